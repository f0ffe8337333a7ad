"""The int8 check measures stored weights, so it works for any graph (here a tiny one, no torch)."""

from __future__ import annotations

from tests.tiny_bundle import onnx_model
from training.quantize import MIN_INT8_SHARE, int8_share, quantize_int8


def test_fp32_has_no_int8_weights_and_its_quantized_twin_mostly_int8():
    fp32 = onnx_model(steps=63)
    assert int8_share(fp32) == 0.0
    assert int8_share(quantize_int8(fp32)) >= MIN_INT8_SHARE
