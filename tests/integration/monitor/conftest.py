"""A monitor over the session's trained bundle, reading the packaged sample's closes from a CSV."""

from __future__ import annotations

from monitor.__main__ import Monitor
from monitor.settings import MonitorSettings
from training.data import read_sample


def sample_monitor(result, tmp_path, model_name: str) -> Monitor:
    csv = tmp_path / "closes.csv"
    read_sample().to_csv(csv, index=False)
    return Monitor(MonitorSettings(model_source=str(result.bundle_path), model_name=model_name,
                                   source="csv", csv=csv))  # fmt: skip
