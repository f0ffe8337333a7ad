import json
from datetime import UTC, date, datetime

import pytest

from bundle import (
    BundleError,
    BundleMetadata,
    FeatureSpec,
    Scaler,
    VariantFile,
    load_bundle,
    write_bundle,
)
from bundle.io import find_bundle, sha256_bytes
from bundle.schema import ConformalInterval, SplitRange


def metadata(data: bytes) -> BundleMetadata:
    split = SplitRange(start=date(2020, 1, 1), end=date(2020, 6, 1), sessions=100)
    return BundleMetadata(
        model_name="m",
        ticker="T",
        source="test",
        trained_at=datetime(2024, 1, 1, tzinfo=UTC),
        data_start=date(2020, 1, 1),
        data_end=date(2020, 6, 1),
        splits={"train": split, "validation": split, "test": split},
        features=FeatureSpec(window=5, target="level", scaler=Scaler(kind="minmax", center=1, scale=2)),
        intervals=(ConformalInterval(coverage=0.8, log_halfwidth=0.01),),
        metrics={"mae": 1.0},
        variants={"fp32": VariantFile(file="model.onnx", sha256=sha256_bytes(data))},
    )


def test_write_then_load_round_trips(tmp_path):
    written = write_bundle(tmp_path, metadata(b"onnx"), {"model.onnx": b"onnx"})
    assert load_bundle(tmp_path).metadata == written.metadata
    assert written.model_path("fp32").read_bytes() == b"onnx"


def test_corrupt_model_file_is_refused(tmp_path):
    write_bundle(tmp_path, metadata(b"onnx"), {"model.onnx": b"onnx"})
    (tmp_path / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(tmp_path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(BundleError, match=r"no metadata\.json"):
        load_bundle(tmp_path)
    write_bundle(tmp_path, metadata(b"onnx"), {"model.onnx": b"onnx"})
    (tmp_path / "model.onnx").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(tmp_path)


def test_unknown_format_or_field_is_refused(tmp_path):
    write_bundle(tmp_path, metadata(b"onnx"), {"model.onnx": b"onnx"})
    meta = json.loads((tmp_path / "metadata.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="invalid"):
        load_bundle(tmp_path)


def test_write_refuses_bytes_that_do_not_match_the_metadata(tmp_path):
    with pytest.raises(BundleError, match="does not match"):
        write_bundle(tmp_path, metadata(b"onnx"), {"model.onnx": b"other"})


def test_absent_variant_is_named(tmp_path):
    bundle = write_bundle(tmp_path, metadata(b"onnx"), {"model.onnx": b"onnx"})
    with pytest.raises(BundleError, match="no 'int8' variant"):
        bundle.model_path("int8")


def test_write_refuses_a_missing_file_and_writes_nothing(tmp_path):
    """A bundle whose metadata names a file that is not there must never appear on disk."""
    with pytest.raises(BundleError, match=r"model\.onnx is missing or does not match"):
        write_bundle(tmp_path, metadata(b"onnx"), {"other.onnx": b"onnx"})
    with pytest.raises(BundleError, match="does not match"):
        write_bundle(tmp_path, metadata(b"onnx"), {"model.onnx": b"other"})
    assert list(tmp_path.iterdir()) == []


def test_write_creates_the_directory_and_may_overwrite(tmp_path):
    target = tmp_path / "runs" / "1" / "bundle"
    write_bundle(target, metadata(b"one"), {"model.onnx": b"one"})
    again = write_bundle(target, metadata(b"two"), {"model.onnx": b"two"})
    assert again.model_path("fp32").read_bytes() == b"two" and load_bundle(target).metadata == again.metadata


def test_loaded_bundle_is_immutable(tmp_path):
    import dataclasses

    bundle = write_bundle(tmp_path, metadata(b"onnx"), {"model.onnx": b"onnx"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        bundle.path = tmp_path / "elsewhere"  # type: ignore[misc]


# --- finding the bundle inside a registry download -------------------------------------------------
def logged_model_layout(root, entry="artifacts/metadata.json"):
    """What a logged model downloads as: MLmodel naming the bundle files as pyfunc artifacts."""
    import yaml

    write_bundle(root / "artifacts", metadata(b"onnx"), {"model.onnx": b"onnx"})
    (root / "code" / "bundle").mkdir(parents=True)
    conf = {"flavors": {"python_function": {"artifacts": {
        "metadata": {"path": entry, "uri": "/elsewhere/metadata.json"},
        "fp32": {"path": "artifacts/model.onnx", "uri": "/elsewhere/model.onnx"},
    }}}}  # fmt: skip
    (root / "MLmodel").write_text(yaml.safe_dump(conf))


def test_an_old_style_download_is_the_bundle_itself(tmp_path):
    write_bundle(tmp_path, metadata(b"onnx"), {"model.onnx": b"onnx"})
    assert find_bundle(tmp_path) == tmp_path


def test_a_logged_model_download_holds_the_bundle_where_its_mlmodel_says(tmp_path):
    logged_model_layout(tmp_path)
    found = find_bundle(tmp_path)
    assert found == (tmp_path / "artifacts").resolve()
    assert load_bundle(found).model_path("fp32").read_bytes() == b"onnx"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("../outside/metadata.json", "is not a metadata.json inside the model"),
        ("artifacts/model.onnx", "is not a metadata.json inside the model"),
        ("artifacts/gone/metadata.json", "is missing"),
    ],
    ids=["escapes-the-download", "not-metadata", "missing"],
)
def test_a_logged_model_whose_mlmodel_points_astray_is_refused(tmp_path, entry, message):
    (tmp_path / "outside").mkdir()
    write_bundle(tmp_path / "outside", metadata(b"onnx"), {"model.onnx": b"onnx"})
    model = tmp_path / "model"
    logged_model_layout(model, entry)
    with pytest.raises(BundleError, match=message):
        find_bundle(model)


def test_a_download_that_is_no_bundle_is_named(tmp_path):
    with pytest.raises(BundleError, match=r"neither metadata\.json nor an MLflow MLmodel"):
        find_bundle(tmp_path)
    (tmp_path / "MLmodel").write_text("flavors:\n  onnx: {}\n")  # some other model
    with pytest.raises(BundleError, match="names no 'metadata' pyfunc artifact"):
        find_bundle(tmp_path)
