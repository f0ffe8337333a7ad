"""ONNX export (fp32, dynamic batch) and dynamic int8 quantization, each checked."""

from __future__ import annotations

import io
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from bundle.schema import ONNX_INPUT, ONNX_OUTPUT
from training.fit import predict_scaled
from training.model import LSTMForecaster

OPSET = 17
PARITY_TOLERANCE = 1e-4  # max |torch - onnxruntime| in scaled units
QUANTIZED_LSTM = "DynamicQuantizeLSTM"


class ExportError(RuntimeError):
    """Export produced a model that does not match torch or is not really quantized."""


@dataclass(frozen=True)
class Exported:
    fp32: bytes
    int8: bytes
    parity_max_abs_diff: float
    fp32_nodes: dict[str, int]
    int8_nodes: dict[str, int]


def node_counts(model_bytes: bytes) -> dict[str, int]:
    graph = onnx.load_from_string(model_bytes).graph
    return dict(Counter(node.op_type for node in graph.node))


def run_onnx(model_bytes: bytes, features: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run([ONNX_OUTPUT], {ONNX_INPUT: features})[0].reshape(-1)


def to_onnx(module: LSTMForecaster, steps: int) -> bytes:
    """Legacy exporter: native LSTM nodes with plain initializers, which int8 quantization needs."""
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


def quantize_int8(fp32: bytes) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        return dst.read_bytes()


def export(module: LSTMForecaster, check_features: np.ndarray) -> Exported:
    """Export, check parity on `check_features` (e.g. the test windows) and quantize."""
    fp32 = to_onnx(module, check_features.shape[1])
    diff = float(np.max(np.abs(run_onnx(fp32, check_features) - predict_scaled(module, check_features))))
    if not diff <= PARITY_TOLERANCE:
        raise ExportError(f"ONNX parity failed: max |torch - onnx| = {diff:.3g} > {PARITY_TOLERANCE}")
    int8 = quantize_int8(fp32)
    int8_nodes = node_counts(int8)
    lstm_nodes = node_counts(fp32).get("LSTM", 0)
    if int8_nodes.get(QUANTIZED_LSTM, 0) != lstm_nodes or int8_nodes.get("LSTM", 0):
        raise ExportError(f"int8 model is not really quantized: nodes {int8_nodes}")
    return Exported(fp32, int8, diff, node_counts(fp32), int8_nodes)
