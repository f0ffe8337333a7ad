"""ONNX export (fp32, dynamic batch) and dynamic int8 quantization, each checked."""

from __future__ import annotations

import io
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import torch

from bundle.schema import ONNX_INPUT, ONNX_OUTPUT
from training.errors import ExportError
from training.fit import predict_scaled
from training.model import RecurrentForecaster
from training.quantize import MIN_INT8_SHARE, int8_share, quantize_int8

OPSET = 17
PARITY_TOLERANCE = 1e-4  # max |torch - onnxruntime| in scaled units


@dataclass(frozen=True)
class Exported:
    fp32: bytes
    int8: bytes | None  # None when int8 export was turned off
    parity_max_abs_diff: float
    fp32_nodes: dict[str, int]
    int8_nodes: dict[str, int]


def node_counts(model_bytes: bytes) -> dict[str, int]:
    graph = onnx.load_from_string(model_bytes).graph
    return dict(Counter(node.op_type for node in graph.node))


def run_onnx(model_bytes: bytes, features: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run([ONNX_OUTPUT], {ONNX_INPUT: features})[0].reshape(-1)


def to_onnx(module: RecurrentForecaster, steps: int) -> bytes:
    """Legacy exporter: native LSTM/GRU nodes with plain initializers, which int8 quantization needs."""
    buffer = io.BytesIO()
    dummy = torch.zeros(1, steps, 1, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.net.eval(),
            (dummy,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=[ONNX_INPUT],
            output_names=[ONNX_OUTPUT],
            dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export(module: RecurrentForecaster, check_features: np.ndarray, int8: bool = True) -> Exported:
    """Export, check parity on `check_features` (e.g. the test windows) and quantize."""
    fp32 = to_onnx(module, check_features.shape[1])
    diff = float(np.max(np.abs(run_onnx(fp32, check_features) - predict_scaled(module, check_features))))
    if not diff <= PARITY_TOLERANCE:
        raise ExportError(f"ONNX parity failed: max |torch - onnx| = {diff:.3g} > {PARITY_TOLERANCE}")
    if not int8:
        return Exported(fp32, None, diff, node_counts(fp32), {})
    quantized = quantize_int8(fp32)
    share = int8_share(quantized)
    if share < MIN_INT8_SHARE:
        raise ExportError(
            f"int8 model is not really quantized: {share:.1%} of its weights are int8 (need "
            f">= {MIN_INT8_SHARE:.0%}; nodes {node_counts(quantized)}); onnxruntime's dynamic "
            "quantization may have no kernel for this architecture: train with --no-int8"
        )
    return Exported(fp32, quantized, diff, node_counts(fp32), node_counts(quantized))
