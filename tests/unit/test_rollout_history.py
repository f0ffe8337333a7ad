"""rollout.history and rollout.tenure without a server: a move's title, its tags read back through
MLflow's own run entities, the writer's identity from the environment, and the periods each
version held the alias (refusals start none; a move the history missed still ends a period)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

from mlflow.entities import Run, RunData, RunInfo, RunTag

from rollout import history
from rollout.settings import HistorySettings
from rollout.tenure import tenures

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def move(from_version, to_version, decision, candidate=None, minutes=0, **extra) -> history.Move:
    return history.Move(model="m", alias="champion", from_version=from_version, to_version=to_version,
                        decision=decision, reason=f"{decision} because", candidate=candidate,
                        at=T0 + timedelta(minutes=minutes), **extra)  # fmt: skip


def as_run(m: history.Move, run_id: str = "r1") -> Run:
    """The run MLflow hands back for a recorded move (what `record` writes: tags, start time)."""
    info = RunInfo(run_id=run_id, experiment_id="1", user_id="", status="FINISHED", lifecycle_stage="active",
                   start_time=int(m.at.timestamp() * 1000), end_time=None)  # fmt: skip
    return Run(info, RunData(tags=[RunTag(k, v) for k, v in m.tags().items()]))


def test_titles_say_what_moved():
    assert move(None, "1", "promoted", "1").title == "none -> v1 promoted"
    assert move("3", "4", "promoted", "4").title == "v3 -> v4 promoted"
    assert move("4", "4", "rejected", "5").title == "v4 -> v4 rejected v5"
    assert move(None, None, "rejected", "1").title == "none -> none rejected v1"  # a refused first model
    assert move("4", "2", "rollback", "2").title == "v4 -> v2 rollback"
    assert move(history.UNKNOWN, "5", "promoted", "5").title == "unknown -> v5 promoted"
    assert not move("4", "4", "promote", "4").moved and move(None, "1", "promoted").moved


def test_a_move_reads_back_from_its_run_as_written():
    written = move("3", "4", "promoted", "4", training_run_id="abc", job="j", host="p")
    read = history.Move.from_run(as_run(written, "rid"))
    assert read == history.Move(**{**written.__dict__, "record_id": "rid"})
    tags = written.tags()
    assert tags["from_version"] == "3" and tags["moved"] == "true" and tags["operator"] == "none"
    assert tags["mlflow.user"] == "j" and tags["mlflow.note.content"] == "promoted because"
    first = history.Move.from_run(as_run(move(None, "1", "promoted", "1")))
    assert first.from_version is None and first.operator is None
    long = history.Move(model="m", alias="champion", from_version="1", to_version="2", decision="promoted",
                        reason="x" * 10_000)  # fmt: skip
    assert len(long.tags()["reason"]) == 8000  # MLflow's limit on a tag's value


def test_the_writer_is_named_by_the_environment(monkeypatch):
    monkeypatch.delenv("FORECASTER_WORKLOAD_JOB", raising=False)
    monkeypatch.delenv("FORECASTER_WORKLOAD_HOST", raising=False)
    assert history.Workload().who() == {"job": None, "host": socket.gethostname()}
    monkeypatch.setenv("FORECASTER_WORKLOAD_JOB", "retrain-29170000")
    monkeypatch.setenv("FORECASTER_WORKLOAD_HOST", "retrain-29170000-x7k2p")
    assert history.Workload().who() == {"job": "retrain-29170000", "host": "retrain-29170000-x7k2p"}
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "mlflow-bob")
    assert history.operator("alice") == "alice" and history.operator() == "mlflow-bob"
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    import getpass

    assert history.operator() == getpass.getuser()


def test_periods_follow_the_alias_and_refusals_start_none():
    moves = [
        move(None, "1", "promoted", "1", minutes=0),
        move("1", "1", "rejected", "2", minutes=10),
        move("1", "3", "promoted", "3", minutes=20),
        move("4", "4", "rejected", "5", minutes=30),  # someone moved 3 -> 4 and the history missed it
        move("4", "3", "rollback", "3", minutes=40),
    ]
    periods = tenures(list(reversed(moves)))  # any order: read() gives newest first
    at = [T0 + timedelta(minutes=m) for m in (0, 20, 30, 40)]
    assert [(p.version, p.start, p.end) for p in periods] == [
        ("1", at[0], at[1]), ("3", at[1], at[2]), ("4", at[2], at[3]), ("3", at[3], None),
    ]  # fmt: skip
    assert periods[0].move is moves[0] and periods[2].move is moves[3]
    assert tenures([move(None, None, "rejected", "1")]) == []  # a refused first model: no champion yet


def test_history_flags_follow_the_convention(capsys):
    from pydantic_settings import CliApp

    from rollout.__main__ import main

    settings = CliApp.run(HistorySettings, cli_args=["--model", "m", "--tracking-uri", "http://x", "--json"])
    assert settings.json_output and settings.alias == "champion" and settings.prometheus is None
    assert main(["history", "--model", "m", "--tracking-uri", "http://x", "--limit", "0"]) == 2
    err = capsys.readouterr().err
    assert "error: rollout history: invalid settings" in err and "limit" in err
