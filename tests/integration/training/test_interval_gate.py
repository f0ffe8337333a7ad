"""With a real registry: a candidate whose interval score is worse than the champion's on the common
window is registered but refused, and the alias stays where it was; the champion history records
both decisions of the real pipeline (the first champion, then the refusal)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from rollout import history
from tests.conftest import fast_settings
from training import pipeline
from training.gate import ChampionScore

pytestmark = pytest.mark.slow


def test_worse_interval_score_leaves_the_alias(tmp_path, monkeypatch):
    settings = fast_settings(tmp_path, model_name="wink", max_epochs=1)
    first = pipeline.run(settings)
    assert first.decision.promote and first.metadata.format_version == 2
    assert {"winkler_80", "winkler_95", "static_winkler_80", "pinball"} <= first.metrics.keys()
    assert {
        "online_winkler_80",
        "online_winkler_95",
        "online_coverage_80",
        "online_pinball",
    } <= first.metrics.keys()
    real = pipeline._score_champion

    def champion_with_perfect_intervals(*args, **kwargs):
        score = real(*args, **kwargs)  # the champion really is scored on this window
        # the gate judges what will be served: the online replay, the same for the same model and window
        assert score.winkler[0.8] == pytest.approx(first.metrics["online_winkler_80"])
        # beaten on MAE, unbeatable on intervals
        return ChampionScore(score.version, mae=float("inf"), winkler={c: 0.0 for c in score.winkler})

    monkeypatch.setattr(pipeline, "_score_champion", champion_with_perfect_intervals)
    second = pipeline.run(settings.model_copy(update={"output_dir": tmp_path / "out2"}))
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    assert not second.decision.promote
    assert str(client.get_model_version_by_alias("wink", "champion").version) == "1"
    tags = client.get_model_version("wink", "2").tags
    assert tags["gate.decision"] == "rejected"
    assert "Winkler 80%" in tags["gate.reasons"] and "is worse than champion's 0.0000" in tags["gate.reasons"]
    moves = history.read(client, "wink")
    assert [(m.from_version, m.to_version, m.decision, m.candidate) for m in moves] == [
        ("1", "1", "rejected", "2"),
        (None, "1", "promoted", "1"),
    ]
    assert (
        moves[0].reason == tags["gate.reasons"]
        and moves[0].training_run_id == client.get_model_version("wink", "2").run_id
    )
