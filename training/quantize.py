"""Dynamic int8 quantization of an ONNX model, and the check that it really happened (torch-free)."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

# Share of weight elements that must be stored as int8 for the "int8" variant to be real: most of
# them. An LSTM quantizes to 86% (8 units) .. 97% (50 units; biases stay fp32); a GRU to ~0.2%
# (onnxruntime has no quantized GRU kernel, only the Linear head is touched): a variant that is
# fp32 in all but name is refused.
MIN_INT8_SHARE = 0.5


def quantize_int8(fp32: bytes) -> bytes:
    """onnxruntime's dynamic quantization with int8 weights (LSTM -> DynamicQuantizeLSTM, MatMul ->
    MatMulInteger); ops it has no kernel for stay fp32, which `int8_share` reveals."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        return dst.read_bytes()


def int8_share(model_bytes: bytes) -> float:
    """Fraction of the graph's weight elements (initializers) stored as 8-bit integers."""
    sizes = Counter()
    for init in onnx.load_from_string(model_bytes).graph.initializer:
        # pragma: no mutate start (equivalent: -= negates both counts alike, and the share is their ratio)
        sizes[init.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)] += int(np.prod(init.dims))
        # pragma: no mutate end
    total = sizes[True] + sizes[False]
    return sizes[True] / total if total else 0.0
