"""A real bundle in milliseconds: an ONNX graph made with onnx.helper (no torch, no MLflow).

The graph is `y = weight * mean(x) + bias` over the window's scaled inputs (a MatMul, so dynamic
int8 quantization has weights to quantize). Every number a test checks can be written down by hand:
with `weight = bias = 0` the served price is `last close * exp(center)` (log-return target) or
`center` (level target); `expected_forecast` gives the predictor tests' model's answer. Only the
batch is dynamic, as in the real export: a window of the wrong length is refused by onnxruntime.
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
    PredictiveDistribution,
    Scaler,
    VariantFile,
    write_bundle,
)
from bundle.io import sha256_bytes
from bundle.schema import ONNX_INPUT, ONNX_OUTPUT, SplitRange, Target
from training.quantize import quantize_int8

# The predictor tests' model (write_tiny_bundle): a gently trend-following forecaster.
WINDOW = 8
GAIN, BIAS = 0.5, 0.1
SCALER = Scaler(kind="standard", center=0.0005, scale=0.02)
INTERVALS = (
    ConformalInterval(coverage=0.8, log_halfwidth=0.02),
    ConformalInterval(coverage=0.95, log_halfwidth=0.04),
)


def onnx_model(steps: int, weight: float = GAIN, bias: float = BIAS) -> bytes:
    """`x[batch, steps, 1]` float32 -> `y[batch, 1] = weight * mean(x over steps) + bias`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

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
            numpy_helper.from_array(np.full((steps, 1), weight / steps, dtype=np.float32), "w"),
            numpy_helper.from_array(np.array([bias], dtype=np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def metadata(
    data: bytes,
    *,
    int8: bytes | None = None,
    window: int = 5,
    target: Target = "log_return",
    center: float = 0.0,
    scale: float = 1.0,
    intervals: tuple[tuple[float, float], ...] = ((0.8, 0.1),),
    distribution: PredictiveDistribution | None = None,
    point_weight: float = 1.0,
) -> BundleMetadata:
    """Metadata of a bundle holding `data` as fp32 (and `int8`); intervals are (coverage, log
    half-width) pairs; with a `distribution`, format 2."""
    split = SplitRange(start=date(2020, 1, 1), end=date(2020, 6, 1), sessions=100)
    variants = {"fp32": VariantFile(file="model.onnx", sha256=sha256_bytes(data))}
    if int8 is not None:
        variants["int8"] = VariantFile(file="model.int8.onnx", sha256=sha256_bytes(int8))
    kind = "standard" if target == "log_return" else "minmax"
    return BundleMetadata(
        model_name="tiny",
        ticker="TINY",
        source="made in the test",
        trained_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        data_start=date(2020, 1, 1),
        data_end=date(2020, 6, 1),
        splits={"train": split, "validation": split, "test": split},
        features=FeatureSpec(
            window=window, target=target, scaler=Scaler(kind=kind, center=center, scale=scale)
        ),
        intervals=tuple(ConformalInterval(coverage=c, log_halfwidth=q) for c, q in intervals),
        metrics={"mae": 1.0, "naive_mae": 1.0},
        variants=variants,
        distribution=distribution,
        point_weight=point_weight,
    )


def tiny_bundle(
    directory: Path, *, weight: float = 0.0, bias: float = 0.0, int8: bool = False,
    model: bytes | None = None, **meta,
) -> LoadedBundle:  # fmt: skip
    """Write and load a real bundle directory (sha256-checked like any other)."""
    if model is None:
        window, target = meta.get("window", 5), meta.get("target", "log_return")
        model = onnx_model(window - 1 if target == "log_return" else window, weight, bias)
    files = {"model.onnx": model}
    if int8:
        files["model.int8.onnx"] = quantize_int8(model)
    return write_bundle(directory, metadata(model, int8=files.get("model.int8.onnx"), **meta), files)


def write_tiny_bundle(
    directory: Path, *, int8: bool = False, intervals=INTERVALS, bias: float = BIAS
) -> LoadedBundle:
    """The predictor tests' model; `bias` far from 0 makes one the runtime's self-test refuses."""
    return tiny_bundle(
        directory, weight=GAIN, bias=bias, int8=int8, window=WINDOW, center=SCALER.center,
        scale=SCALER.scale, intervals=tuple((i.coverage, i.log_halfwidth) for i in intervals),
    )  # fmt: skip


def expected_forecast(closes: np.ndarray) -> np.ndarray:
    """What write_tiny_bundle's model answers for `[batch, WINDOW]` closes, without onnxruntime."""
    closes = np.asarray(closes, dtype=np.float64)
    z = (np.diff(np.log(closes), axis=1) - SCALER.center) / SCALER.scale
    scaled = GAIN * z.mean(axis=1) + BIAS
    return closes[:, -1] * np.exp(scaled * SCALER.scale + SCALER.center)


def windows(rows: int = 2, window: int = WINDOW, start: float = 10.0) -> np.ndarray:
    """Deterministic, gently trending closes `[rows, window]`."""
    t = np.arange(window, dtype=np.float64)
    return np.stack([start * (1 + 0.1 * r) * np.exp(0.01 * t + 0.005 * np.sin(t + r)) for r in range(rows)])


def normal_distribution(sigma_floor: float = 1e-4) -> PredictiveDistribution:
    """A format 2 bundle's served law: |z| quantiles of a unit normal on the bundle grid."""
    from statistics import NormalDist

    from bundle.distribution import LEVELS

    table = tuple(NormalDist().inv_cdf((1 + c) / 2) for c in LEVELS)
    slope = (table[-1] - table[LEVELS.index(0.9)]) / np.log(0.1 / 0.01)
    return PredictiveDistribution(sigma_floor=sigma_floor, levels=LEVELS, score_quantiles=table,
                                  tail_slope=float(slope), calibration_sessions=750)  # fmt: skip


def write_naive_bundle(directory: Path, window: int = 60) -> LoadedBundle:
    """A format 2 bundle that serves naive (point weight 0) with `normal_distribution()`, 80% and 95%
    intervals: the online calibration tests' model (every band can be written down by hand)."""
    return tiny_bundle(
        directory, window=window, intervals=((0.8, 0.1), (0.95, 0.2)), distribution=normal_distribution(),
        point_weight=0.0,
    )  # fmt: skip
