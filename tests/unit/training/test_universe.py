"""An Indexed Job pod trains `universe[index]` exactly as `--ticker` would; every way it could train
the wrong ticker, or none, is a settings error (exit 2) that names the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import CliApp

from training.__main__ import EXIT_DATA
from training.__main__ import main as training_main
from training.settings import TrainSettings

UNIVERSE = ["--source", "csv", "--csv-dir", "/data", "--universe", "PETR4.SA, VALE3.SA,^BVSP"]


@pytest.fixture(autouse=True)
def no_index(monkeypatch):
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    monkeypatch.delenv("FORECASTER_TRAIN_TICKER", raising=False)


def cli(*args: str) -> TrainSettings:
    return CliApp.run(TrainSettings, cli_args=list(args))


def test_the_index_selects_the_ticker_its_model_name_and_its_csv():
    s = cli(*UNIVERSE, "--universe-index", "1")
    assert s.ticker == "VALE3.SA" and s.registered_name == "vale3-sa-forecaster"
    assert s.csv_path == Path("/data/VALE3.SA.csv")
    assert cli(*UNIVERSE, "--universe-index", "2").registered_name == "bvsp-forecaster"


def test_the_index_defaults_to_the_one_kubernetes_sets(monkeypatch):
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "0")
    monkeypatch.setenv("FORECASTER_TRAIN_UNIVERSE", "PETR4.SA,VALE3.SA")
    s = cli("--source", "csv", "--csv-dir", "/data")
    assert s.ticker == "PETR4.SA" and s.universe_index == 0
    assert cli("--source", "csv", "--csv-dir", "/data", "--universe-index", "1").ticker == "VALE3.SA"


def test_a_consistent_ticker_is_accepted():
    assert cli(*UNIVERSE, "--universe-index", "0", "--ticker", "PETR4.SA").ticker == "PETR4.SA"


@pytest.mark.parametrize(
    "args,env,message",
    [
        (["--universe-index", "3"], None, r"universe index 3 is out of range: .* 3 tickers \(0\.\.2\)"),
        ([], "3", r"universe index 3 is out of range"),
        ([], None, r"--universe needs --universe-index or JOB_COMPLETION_INDEX"),
        ([], "two", r"JOB_COMPLETION_INDEX='two' is not an index"),
        (["--universe-index", "-1"], None, r"greater than or equal to 0"),
        (["--universe-index", "0", "--ticker", "VALE3.SA"], None,
         r"--ticker VALE3.SA contradicts --universe, whose index 0 is PETR4.SA"),
        (["--universe-index", "0", "--model-name", "one"], None, r"--model-name names one model"),
    ],
)  # fmt: skip
def test_an_index_that_selects_no_ticker_or_the_wrong_one_is_refused(monkeypatch, args, env, message):
    if env is not None:
        monkeypatch.setenv("JOB_COMPLETION_INDEX", env)
    with pytest.raises(ValidationError, match=message):
        cli(*UNIVERSE, *args)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--universe", "A,,B", "--universe-index", "0"], r"has an empty entry"),
        (["--universe", "A,../B", "--universe-index", "0"], r"'../B' is not a ticker"),
        (["--universe", "PETR4.SA,petr4-sa", "--universe-index", "0"], r"share the model name"),
        (["--universe", "A,A", "--universe-index", "0"], r"share the model name"),
        (["--universe-index", "0"], r"--universe-index needs --universe"),
        (["--universe", "A", "--universe-index", "0", "--csv", "a.csv", "--csv-dir", "d"],
         r"--csv is one file"),
        (["--universe", "A", "--universe-index", "0"], r"--source csv needs one of --csv PATH or --csv-dir"),
    ],
)  # fmt: skip
def test_bad_universe_settings_are_named(args, message):
    with pytest.raises(ValidationError, match=message):
        cli("--source", "csv", *args)


def test_a_sample_universe_is_refused():
    with pytest.raises(ValidationError, match=r"--source sample is one series"):
        cli("--source", "sample", "--universe", "A,B", "--universe-index", "0")


def test_csv_dir_belongs_to_the_csv_source():
    with pytest.raises(ValidationError, match=r"--csv-dir is read by --source csv only"):
        cli("--csv-dir", "/data")


def test_the_command_exits_2_with_one_message_naming_the_problem(capsys):
    assert training_main([*UNIVERSE, "--universe-index", "7"]) == EXIT_DATA
    err = capsys.readouterr().err
    assert "universe index 7 is out of range" in err and "Traceback" not in err


def test_without_a_universe_nothing_changes():
    s = cli("--ticker", "VALE3.SA")
    assert s.universe is None and s.universe_index is None and s.registered_name == "vale3-sa-forecaster"
    s = cli("--source", "csv", "--csv", "/x/petr4.csv")
    assert s.csv_path == Path("/x/petr4.csv") and s.ticker == "PETR4.SA"
