"""A real bundle in milliseconds: a two-node ONNX graph made with onnx.helper (no torch, no MLflow).

The graph is `y = x·w + b` over the window's scaled log returns, with w = `gain / steps` each: the
forecast return is `gain` times the window's mean scaled return plus `bias`, so every test can
compute the expected answer by hand (`expected_forecast`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from bundle import (
    BundleMetadata,
    ConformalInterval,
    FeatureSpec,
    LoadedBundle,
    Scaler,
    VariantFile,
    write_bundle,
)
from bundle.io import sha256_bytes
from bundle.schema import ONNX_INPUT, ONNX_OUTPUT, SplitRange
from training.quantize import quantize_int8

WINDOW = 8
GAIN, BIAS = 0.5, 0.1
SCALER = Scaler(kind="standard", center=0.0005, scale=0.02)
INTERVALS = (
    ConformalInterval(coverage=0.8, log_halfwidth=0.02),
    ConformalInterval(coverage=0.95, log_halfwidth=0.04),
)


def onnx_model(steps: int, bias: float = BIAS) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.full((steps, 1), GAIN / steps, dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", [ONNX_INPUT, "flat_shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], [ONNX_OUTPUT]),
        ],
        "tiny",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, ["batch", steps, 1])],
        [helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, ["batch", 1])],
        [
            numpy_helper.from_array(np.array([-1, steps], dtype=np.int64), "flat_shape"),
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.array([bias], dtype=np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def metadata(files: dict[str, bytes], window: int = WINDOW, intervals=INTERVALS) -> BundleMetadata:
    split = SplitRange(start=date(2020, 1, 1), end=date(2020, 6, 1), sessions=100)
    variants = {"fp32": VariantFile(file="model.onnx", sha256=sha256_bytes(files["model.onnx"]))}
    if "model.int8.onnx" in files:
        int8 = files["model.int8.onnx"]
        variants["int8"] = VariantFile(file="model.int8.onnx", sha256=sha256_bytes(int8))
    return BundleMetadata(
        model_name="tiny",
        ticker="TINY",
        source="made in the test",
        trained_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        data_start=date(2020, 1, 1),
        data_end=date(2020, 6, 1),
        splits={"train": split, "validation": split, "test": split},
        features=FeatureSpec(window=window, target="log_return", scaler=SCALER),
        intervals=intervals,
        metrics={"mae": 1.0, "naive_mae": 1.0},
        variants=variants,
    )


def write_tiny_bundle(
    directory: Path, window: int = WINDOW, int8: bool = False, intervals=INTERVALS, bias: float = BIAS
) -> LoadedBundle:
    """`bias` far from 0 makes a model whose forecasts the runtime's self-test must refuse."""
    files = {"model.onnx": onnx_model(window - 1, bias)}
    if int8:
        files["model.int8.onnx"] = quantize_int8(files["model.onnx"])
    return write_bundle(directory, metadata(files, window, intervals), files)


def expected_forecast(closes: np.ndarray) -> np.ndarray:
    """What the tiny model must answer for `[batch, window]` closes, computed without onnxruntime."""
    closes = np.asarray(closes, dtype=np.float64)
    z = (np.diff(np.log(closes), axis=1) - SCALER.center) / SCALER.scale
    scaled = GAIN * z.mean(axis=1) + BIAS
    return closes[:, -1] * np.exp(scaled * SCALER.scale + SCALER.center)


def windows(rows: int = 2, window: int = WINDOW, start: float = 10.0) -> np.ndarray:
    """Deterministic, gently trending closes `[rows, window]`."""
    t = np.arange(window, dtype=np.float64)
    return np.stack([start * (1 + 0.1 * r) * np.exp(0.01 * t + 0.005 * np.sin(t + r)) for r in range(rows)])
