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


# --- every file a bundle names resolves inside the bundle's folder (issue 23) ------------------------
def hostile(directory, name: str, data: bytes = b"onnx") -> None:
    """A bundle whose metadata.json names `name` (with that file's right sha256), written by hand as
    an attacker would: the writer refuses such metadata."""
    write_bundle(directory, metadata(data), {"model.onnx": data})
    meta = json.loads((directory / "metadata.json").read_text())
    meta["variants"]["fp32"]["file"] = name
    (directory / "metadata.json").write_text(json.dumps(meta))
    (directory / "model.onnx").unlink()


@pytest.mark.parametrize("where", ["dot-dot", "absolute"])
def test_a_bundle_naming_a_file_outside_its_folder_is_refused_though_its_sha256_matches(tmp_path, where):
    outside = tmp_path / "x" / "model.onnx"
    outside.parent.mkdir()
    outside.write_bytes(b"onnx")  # the right bytes, where the metadata points
    bundle = tmp_path / "bundle"
    hostile(bundle, "../x/model.onnx" if where == "dot-dot" else str(outside))
    with pytest.raises(BundleError, match="a file name inside the bundle's folder"):
        load_bundle(bundle)


def test_a_symlink_leaving_the_bundles_folder_is_refused(tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes(b"onnx")
    bundle = tmp_path / "bundle"
    write_bundle(bundle, metadata(b"onnx"), {"model.onnx": b"onnx"})
    (bundle / "model.onnx").unlink()
    (bundle / "model.onnx").symlink_to(outside)  # same bytes, same sha256, outside the folder
    with pytest.raises(BundleError, match=r"model\.onnx resolves outside the bundle's folder"):
        load_bundle(bundle)
    good = write_bundle(tmp_path / "good", metadata(b"onnx"), {"model.onnx": b"onnx"})
    (good.path / "model.onnx").unlink()
    (good.path / "model.onnx").symlink_to(outside)  # swapped after a load: refused when opened
    with pytest.raises(BundleError, match="resolves outside"):
        good.model_path("fp32")


def test_a_symlinked_metadata_json_leaving_the_folder_is_refused(tmp_path):
    write_bundle(tmp_path / "real", metadata(b"onnx"), {"model.onnx": b"onnx"})
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(b"onnx")
    (bundle / "metadata.json").symlink_to(tmp_path / "real" / "metadata.json")
    with pytest.raises(BundleError, match=r"metadata\.json resolves outside the bundle's folder"):
        load_bundle(bundle)


def test_symlinks_inside_the_folder_and_a_symlinked_folder_are_fine(tmp_path):
    """Kubernetes mounts (ConfigMaps, projected volumes) link files to `..data/` inside the folder,
    and /mnt/models itself may be a link: what counts is where a file resolves."""
    real = tmp_path / "real"
    write_bundle(real, metadata(b"onnx"), {"model.onnx": b"onnx"})
    (real / "..data").mkdir()
    (real / "model.onnx").rename(real / "..data" / "model.onnx")
    (real / "model.onnx").symlink_to("..data/model.onnx")
    (tmp_path / "link").symlink_to(real)
    assert load_bundle(tmp_path / "link").model_path("fp32").read_bytes() == b"onnx"


@pytest.mark.parametrize("name", ["../escape.onnx", "ABSOLUTE", "sub/model.onnx", "metadata.json"])
def test_training_never_writes_a_file_outside_the_bundles_folder(tmp_path, name):
    """write_bundle (training's writer) refuses any file name but a plain one, and writes nothing."""
    bundle = tmp_path / "bundle"
    name = str(tmp_path / "escape.onnx") if name == "ABSOLUTE" else name
    with pytest.raises(BundleError, match="a file name inside the bundle's folder"):
        write_bundle(bundle, metadata(b"onnx"), {"model.onnx": b"onnx", name: b"x"})
    assert [p.name for p in tmp_path.rglob("*")] in ([], ["bundle"])


def test_training_never_writes_through_a_symlink_leaving_the_folder(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.onnx").symlink_to(tmp_path / "victim.onnx")
    with pytest.raises(BundleError, match="resolves outside the bundle's folder"):
        write_bundle(bundle, metadata(b"onnx"), {"model.onnx": b"onnx"})
    assert not (tmp_path / "victim.onnx").exists()


def test_a_logged_model_whose_metadata_names_a_file_outside_the_artifacts_is_refused(tmp_path):
    """The logged-model layout: the bundle is `artifacts/`; `../code/...` is inside the download
    but outside the bundle, with a known sha256."""
    logged_model_layout(tmp_path)
    code = tmp_path / "code" / "bundle" / "__init__.py"
    code.write_bytes(b"onnx")
    meta = json.loads((tmp_path / "artifacts" / "metadata.json").read_text())
    meta["variants"]["fp32"]["file"] = "../code/bundle/__init__.py"
    (tmp_path / "artifacts" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="a file name inside the bundle's folder"):
        load_bundle(find_bundle(tmp_path))
