"""Issue 12: the bootstrap Indexed Job's per-index command, run for each index of a 2-ticker universe
against one real MLflow, registers one champion per ticker (named by the shared rule); re-run, it
skips the ticker that has one. The series are the two real ones available offline."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from bundle.conventions import model_name_for
from training.__main__ import main as training_main
from training.data import read_csv, read_sample

pytestmark = pytest.mark.slow
UNIVERSE = ("AAPL", "PETR4.SA")


def test_each_index_registers_the_champion_of_its_ticker(tmp_path, petr4_csv, monkeypatch, capsys):
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    read_sample().to_csv(csv_dir / "AAPL.csv", index=False)
    read_csv(petr4_csv).tail(700).to_csv(csv_dir / "PETR4.SA.csv", index=False)  # recent years: fast
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [
        "--source", "csv", "--csv-dir", str(csv_dir), "--universe", ",".join(UNIVERSE),
        "--tracking-uri", uri, "--artifact-root", str(tmp_path / "store"), "--output-dir",
        str(tmp_path / "out"), "--skip-if-champion", "--require-promotion", "--max-epochs", "1",
        "--patience", "1", "--validation-sessions", "120", "--test-sessions", "120", "--no-int8",
    ]  # fmt: skip
    for index in range(len(UNIVERSE)):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        assert training_main(command) == 0
    out = capsys.readouterr().out
    assert "universe index 1: PETR4.SA -> petr4-sa-forecaster" in out
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for ticker in UNIVERSE:
        champion = client.get_model_version_by_alias(model_name_for(ticker), "champion")
        assert str(champion.version) == "1" and champion.tags["ticker"] == ticker
    assert len(client.search_registered_models()) == len(UNIVERSE)

    monkeypatch.setenv("JOB_COMPLETION_INDEX", "0")  # the Job again (helm upgrade): nothing retrained
    assert training_main(command) == 0
    assert "aapl-forecaster@champion is version 1: nothing to bootstrap" in capsys.readouterr().out
