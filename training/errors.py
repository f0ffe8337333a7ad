"""One family of training errors: whatever goes wrong, nothing is registered and the alias stays."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """A training run could not produce a checked bundle."""


class DataError(TrainingError, ValueError):
    """The price data is missing, malformed or too short (exit code 2: fix the input)."""


class ExportError(TrainingError):
    """Export produced a model that does not match torch or is not really quantized."""


class BundleRoundTripError(TrainingError):
    """The bundle, read back through the serving runtime, does not reproduce training's forecasts."""
