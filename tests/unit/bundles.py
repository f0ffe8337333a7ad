"""A real bundle small enough for unit tests: a one-node ONNX graph whose forecast is known by hand.

The graph computes `y = weight * mean(x)` over the window's scaled inputs. With `weight = 0` the
scaled output is 0, so the served price is `last close * exp(center)` for the log-return target
(`center` of the scaler) and `center` itself for the level target: every number a test checks
can be written down without running a model.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from onnx import TensorProto, helper

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
from bundle.schema import SplitRange, Target


def onnx_bytes(steps: int, weight: float = 0.0) -> bytes:
    """`x[batch, steps, 1]` float32 -> `y[batch] = weight * mean(x over steps)`.

    Only the batch is dynamic, as in the real export: a window of the wrong length is refused.
    """
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
            helper.make_node("Mul", ["m", "w"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", steps, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [], [weight])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def metadata(
    data: bytes,
    *,
    window: int = 5,
    target: Target = "log_return",
    center: float = 0.0,
    scale: float = 1.0,
    intervals: tuple[tuple[float, float], ...] = ((0.8, 0.1),),
) -> BundleMetadata:
    """Metadata of a one-variant (fp32) bundle; `intervals` are (coverage, log half-width) pairs."""
    split = SplitRange(start=date(2020, 1, 1), end=date(2020, 6, 1), sessions=100)
    kind = "standard" if target == "log_return" else "minmax"
    return BundleMetadata(
        model_name="tiny",
        ticker="T",
        source="unit test",
        trained_at=datetime(2024, 1, 1, tzinfo=UTC),
        data_start=date(2020, 1, 1),
        data_end=date(2020, 6, 1),
        splits={"train": split, "validation": split, "test": split},
        features=FeatureSpec(
            window=window, target=target, scaler=Scaler(kind=kind, center=center, scale=scale)
        ),
        intervals=tuple(ConformalInterval(coverage=c, log_halfwidth=q) for c, q in intervals),
        metrics={"mae": 1.0},
        variants={"fp32": VariantFile(file="model.onnx", sha256=sha256_bytes(data))},
    )


def tiny_bundle(directory: Path, *, weight: float = 0.0, model: bytes | None = None, **meta) -> LoadedBundle:
    """Write and load a real bundle directory (sha256-checked like any other)."""
    if model is None:
        window, target = meta.get("window", 5), meta.get("target", "log_return")
        model = onnx_bytes(window - 1 if target == "log_return" else window, weight)
    return write_bundle(directory, metadata(model, **meta), {"model.onnx": model})
