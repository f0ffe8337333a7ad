"""The int8 check works for any architecture: it measures what was quantized, not node names."""

from __future__ import annotations

import numpy as np
import pytest

from training.errors import ExportError
from training.export import export
from training.model import RecurrentForecaster
from training.quantize import MIN_INT8_SHARE, int8_share


def features(steps: int = 12) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(4, steps, 1)).astype(np.float32)


def test_an_lstm_quantizes_and_passes_the_check():
    exported = export(RecurrentForecaster("lstm", hidden=8), features())
    assert exported.int8 is not None and int8_share(exported.int8) >= MIN_INT8_SHARE
    assert int8_share(exported.fp32) == 0.0
    assert exported.int8_nodes.get("DynamicQuantizeLSTM") == 2


def test_a_gru_whose_int8_variant_would_be_fp32_in_all_but_name_is_refused():
    with pytest.raises(ExportError, match=r"not really quantized: \d\.\d% of its weights.*--no-int8"):
        export(RecurrentForecaster("gru", hidden=8), features())


def test_a_gru_exports_fp32_only_when_int8_is_off():
    exported = export(RecurrentForecaster("gru", hidden=8), features(), int8=False)
    assert exported.int8 is None and exported.fp32_nodes.get("GRU") == 2
