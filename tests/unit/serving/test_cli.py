"""Both servers' command line and logging set-up (serving/cli.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serving import cli
from tests.conftest import REPO


def test_quiet_logging_silences_per_request_lines(tmp_path):
    config = json.loads(Path(cli.quiet_log_config(str(tmp_path))).read_text())
    assert config["loggers"]["uvicorn.access"]["level"] == "WARNING"
    assert config["loggers"]["kserve.trace"]["level"] == "WARNING"


def test_quiet_logging_silences_rejections(tmp_path):
    config = json.loads(Path(cli.quiet_log_config(str(tmp_path))).read_text())
    assert config["loggers"]["predictor.rejected"]["level"] == "WARNING"


@pytest.mark.parametrize("server", ["predictor", "transformer"])
def test_python_m_runs_prometheus_client_in_multiprocess_mode(tmp_path, server):
    """prometheus_client picks its mode when first imported (kserve imports it): `python -m <server>`
    prepares the metrics directory before, so every worker's metrics are aggregated."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['python -m {server}', '--help']\n"
        "try:\n"
        f"    runpy.run_module('{server}', run_name='__main__', alter_sys=True)\n"
        "except SystemExit:\n"
        "    pass\n"
        "from prometheus_client import values\n"
        "print(values.ValueClass.__name__)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"} | {"TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "MmapedValue", done.stdout[-500:] + done.stderr[-2000:]
    assert any(p.name.startswith("forecaster-metrics-") for p in tmp_path.iterdir())


def test_the_metrics_directory_is_made_or_emptied_of_a_previous_run(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    cli.prepare_metrics_dir()
    made = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert made.parent == tmp_path and made.is_dir() and not list(made.iterdir())
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"stale")
    (given / "keep.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
    cli.prepare_metrics_dir()
    assert sorted(p.name for p in given.iterdir()) == ["keep.txt"]
