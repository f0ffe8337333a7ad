"""One family of training errors: whatever goes wrong, nothing is registered and the alias stays."""

from __future__ import annotations

from marketdata.errors import DataError as _DataError


class TrainingError(RuntimeError):
    """A training run could not produce a checked bundle."""


# The data error is shared with serving (marketdata is torch-free); __main__ maps it to exit 2.
DataError = _DataError


class ExportError(TrainingError):
    """Export produced a model that does not match torch or is not really quantized."""


class BundleRoundTripError(TrainingError):
    """The bundle, read back through the serving runtime, does not reproduce training's forecasts."""
