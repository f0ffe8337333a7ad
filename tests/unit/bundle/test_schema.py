"""The metadata contract: what it accepts, what it refuses, and that a parsed bundle cannot change."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from bundle import BUNDLE_FORMAT_VERSION, BundleMetadata, ConformalInterval, FeatureSpec, Scaler
from tests.tiny_bundle import metadata

SCALER = Scaler(kind="standard", center=0.0, scale=1.0)


@pytest.mark.parametrize(
    "model,change",
    [
        (SCALER, {"center": 1.0}),
        (FeatureSpec(window=5, target="level", scaler=SCALER), {"window": 6}),
        (ConformalInterval(coverage=0.8, log_halfwidth=0.1), {"log_halfwidth": 0.0}),
        (metadata(b"x"), {"ticker": "OTHER"}),
    ],
    ids=["scaler", "features", "interval", "metadata"],
)
def test_contract_models_are_immutable(model, change):
    """A loaded bundle is shared by threads serving requests: nothing may edit it in place."""
    (field, value), *_ = change.items()
    with pytest.raises(ValidationError, match="frozen"):
        setattr(model, field, value)
    assert getattr(model, field) != value


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        Scaler(kind="standard", center=0.0, scale=1.0, offset=2.0)


def test_a_metadata_without_a_distribution_is_format_1_and_unknown_versions_are_refused():
    """Training writes format 2 (BUNDLE_FORMAT_VERSION); format 1 (no distribution) is still read."""
    meta = metadata(b"x")
    assert BUNDLE_FORMAT_VERSION == 2 and meta.format_version == 1
    assert BundleMetadata.model_validate_json(meta.model_dump_json()).format_version == 1
    with pytest.raises(ValidationError):
        BundleMetadata.model_validate({**meta.model_dump(), "format_version": 3})


@pytest.mark.parametrize("target,steps", [("log_return", 4), ("level", 5)])
def test_steps_the_model_sees(target, steps):
    assert FeatureSpec(window=5, target=target, scaler=SCALER).steps == steps


@pytest.mark.parametrize("coverage", [1e-6, 0.5, 0.999999])
def test_coverage_strictly_between_0_and_1_is_accepted(coverage):
    assert ConformalInterval(coverage=coverage, log_halfwidth=0.0).coverage == coverage


@pytest.mark.parametrize("coverage", [0.0, 1.0, -0.1, 1.5])
def test_coverage_of_0_or_1_or_outside_is_refused(coverage):
    with pytest.raises(ValidationError, match="coverage"):
        ConformalInterval(coverage=coverage, log_halfwidth=0.1)


def test_half_width_may_be_zero_but_not_negative():
    assert ConformalInterval(coverage=0.8, log_halfwidth=0.0).log_halfwidth == 0.0
    with pytest.raises(ValidationError, match="log_halfwidth"):
        ConformalInterval(coverage=0.8, log_halfwidth=-1e-9)


def test_scale_must_be_positive():
    with pytest.raises(ValidationError, match="scale"):
        Scaler(kind="minmax", center=1.0, scale=0.0)


def test_bounds_by_hand():
    interval = ConformalInterval(coverage=0.8, log_halfwidth=0.1)
    lo, hi = interval.bounds(np.array([100.0, 0.5]))
    np.testing.assert_allclose(lo, [100 * math.exp(-0.1), 0.5 * math.exp(-0.1)], rtol=1e-12)
    np.testing.assert_allclose(hi, [100 * math.exp(0.1), 0.5 * math.exp(0.1)], rtol=1e-12)


def test_bounds_widen_by_the_given_factor():
    interval = ConformalInterval(coverage=0.8, log_halfwidth=0.1)
    lo, hi = interval.bounds(np.array([[100.0, 100.0]]), widen=np.array([1.0, 2.0]))
    np.testing.assert_allclose(lo, [[100 * math.exp(-0.1), 100 * math.exp(-0.2)]], rtol=1e-12)
    np.testing.assert_allclose(hi, [[100 * math.exp(0.1), 100 * math.exp(0.2)]], rtol=1e-12)


def distribution(levels=(0.8, 0.95)):
    from bundle.distribution import PredictiveDistribution

    return PredictiveDistribution(sigma_floor=1e-4, levels=levels, score_quantiles=(1.2, 1.9),
                                  tail_slope=0.5, calibration_sessions=250)  # fmt: skip


def test_the_format_follows_the_presence_of_a_distribution():
    meta = metadata(b"x", intervals=((0.8, 0.1), (0.95, 0.2)))
    fields = {k: v for k, v in meta.model_dump().items() if k != "format_version"}
    assert BundleMetadata.model_validate(fields).format_version == 1
    two = BundleMetadata.model_validate({**fields, "distribution": distribution().model_dump()})
    assert two.format_version == 2 and two.distribution.levels == (0.8, 0.95)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"format_version": 2}, "format 2 needs a `distribution`"),
        ({"format_version": 1, "point_weight": 0.5}, "format 1 has no `distribution` or `point_weight`"),
        ({"format_version": 1, "distribution": "d"}, "format 1 has no `distribution`"),
        ({"distribution": "missing-95"}, r"coverages \[0.95\] are not calibrated levels"),
        ({"distribution": "d", "point_weight": 1.01}, "less than or equal to 1"),
        ({"distribution": "d", "point_weight": -0.01}, "greater than or equal to 0"),
    ],
)
def test_format_rules_are_enforced(changes, message):
    meta = metadata(b"x", intervals=((0.8, 0.1), (0.95, 0.2)))
    fields = {k: v for k, v in meta.model_dump().items() if k != "format_version"}
    dist = {"d": distribution().model_dump(), "missing-95": distribution((0.8, 0.9)).model_dump()}
    if "distribution" in changes:
        changes = {**changes, "distribution": dist[changes["distribution"]]}
    with pytest.raises(ValidationError, match=message):
        BundleMetadata.model_validate({**fields, **changes})


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_point_weights_at_the_bounds_are_valid(weight):
    fields = {k: v for k, v in metadata(b"x", intervals=((0.8, 0.1), (0.95, 0.2))).model_dump().items()}
    fields.update(format_version=2, distribution=distribution().model_dump(), point_weight=weight)
    assert BundleMetadata.model_validate(fields).point_weight == weight


# -- every file a bundle names is a plain file name in its folder (issue 23) ------------------------
@pytest.mark.parametrize(
    "name",
    ["../x/model.onnx", "..", ".", "/abs/model.onnx", "sub/model.onnx", "sub\\model.onnx", "", "a\0b",
     "model\n.onnx", "metadata.json"],
    ids=["dot-dot", "parent", "self", "absolute", "subfolder", "backslash", "empty", "nul", "newline",
         "the-metadata"],
)  # fmt: skip
def test_a_variant_file_outside_the_bundles_folder_is_refused(name):
    from bundle.schema import VariantFile

    with pytest.raises(ValidationError, match="a file name inside the bundle's folder"):
        VariantFile(file=name, sha256="0" * 64)


@pytest.mark.parametrize("name", ["model.onnx", "model.int8.onnx", "m-1_v2.ONNX", "..model.onnx"])
def test_plain_file_names_are_accepted(name):
    from bundle.schema import VariantFile

    assert VariantFile(file=name, sha256="0" * 64).file == name
