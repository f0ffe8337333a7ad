"""Reliability tests have a CI-sized default and a documented full size (docs/reliability.md):
FORECASTER_FULL=1 runs the full sizes."""

from __future__ import annotations

import os

import psutil

FULL = os.environ.get("FORECASTER_FULL") == "1"


def size(ci: int, full: int) -> int:
    return full if FULL else ci


def rss_mib(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20
