"""The one data error: missing, malformed, too short or implausible closes (training exits 2)."""

from __future__ import annotations


class DataError(ValueError):
    """The price data is missing, malformed or too short (exit code 2: fix the input)."""
