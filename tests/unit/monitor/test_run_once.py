"""A monitor run that fails keeps the last gauges and counts the failure; only a bug logs a traceback."""

from __future__ import annotations

from monitor import metrics
from monitor.__main__ import Monitor
from monitor.settings import MonitorSettings


def failures(model: str) -> float:
    return metrics.RUNS.labels(model, "failure")._value.get()


def test_a_missing_data_file_is_one_line_and_a_counted_failure(tmp_path, caplog):
    settings = MonitorSettings(
        model_source=str(tmp_path), model_name="m1", source="csv", csv=tmp_path / "x.csv"
    )
    before = failures("m1")
    with caplog.at_level("ERROR", logger="monitor"):
        assert Monitor(settings).run_once() is False
    (record,) = caplog.records
    assert "CSV not found" in record.getMessage() and record.exc_info is None
    assert failures("m1") == before + 1


def test_an_unexpected_error_is_logged_with_its_traceback(tmp_path, caplog, monkeypatch):
    settings = MonitorSettings(
        model_source=str(tmp_path), model_name="m2", source="csv", csv=tmp_path / "x.csv"
    )
    monitor = Monitor(settings)

    def bug():
        raise KeyError("close")

    monkeypatch.setattr(monitor, "evaluate", bug)
    with caplog.at_level("ERROR", logger="monitor"):
        assert monitor.run_once() is False
    (record,) = caplog.records
    assert record.exc_info and record.exc_info[0] is KeyError
    assert failures("m2") == 1
