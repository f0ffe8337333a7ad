"""KServe's storage path, end to end on loopback: `python -m bundle.fetch` (what the chart's
ClusterStorageContainer runs as the predictor pod's init container, with `<storageUri> /mnt/models`)
against a real `mlflow server`, into an empty directory; then the predictor started on that
directory, as KServe starts it, answers v2. A bad URI, a missing version or alias, and a bundle
whose file fails its sha256 each exit non-zero with one clear line and leave no bundle behind.
A universe shard's URI (several models) puts each verified bundle in <dest>/<name>/ and skips, with
one line each, a model without its alias or with a corrupt bundle, but fails when MLflow is down.
Both registry layouts load: a version registered from a logged model (what training does now) and
one registered the old way (the run's `bundle` artifacts), by the storage initializer, by the
predictor's own registry source and by the gate's champion re-scoring."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from bundle import OnnxForecaster, VariantFile
from bundle.fetch import EXIT_BAD_VERSION, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_USAGE
from bundle.io import LoadedBundle, load_bundle, sha256_bytes
from tests.conftest import REPO
from tests.integration.servers import MlflowServer, Predictor, wait_for
from tests.tiny_bundle import WINDOW, expected_forecast, windows, write_tiny_bundle

pytestmark = pytest.mark.slow
NAME = "tiny-forecaster"
OTHER = "other-forecaster"  # a second model of a shard, champion = version 1
NEW = "new-forecaster"  # registered, but its training never produced a champion


def _experiment(url: str):
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(url, url)
    mlflow.set_tracking_uri(url)
    experiment = client.get_experiment_by_name("fetch") or client.get_experiment(
        client.create_experiment("fetch")
    )
    return client, experiment.experiment_id


def log_version(url: str, bundle_dir: Path, name: str = NAME) -> str:
    """Log a bundle directory as training does (an MLflow LoggedModel) and register a version of it."""
    import mlflow

    from training import registry

    client, experiment_id = _experiment(url)
    bundle = load_bundle(bundle_dir)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        model_id = registry.log_bundle_model(bundle, name, windows(1, bundle.metadata.features.window)[0], {})
    return registry.register(client, name, model_id, run.info.run_id, {})


def log_old_style_version(url: str, bundle_dir: Path, name: str = NAME) -> str:
    """The layout before LoggedModels: the run's `bundle` artifacts, registered from runs:/<run>/bundle."""
    import mlflow

    client, experiment_id = _experiment(url)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_artifacts(str(bundle_dir), "bundle")
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    run_id = run.info.run_id
    version = client.create_model_version(name, source=f"runs:/{run_id}/bundle", run_id=run_id)
    return str(version.version)


def stored_model_file(server_dir: Path, url: str, name: str, version: str, file: str) -> Path:
    """Where the MLflow server keeps `file` of a logged model's version (to corrupt it behind its back)."""
    from mlflow import MlflowClient

    model_id = MlflowClient(url, url).get_model_version(name, version).source.removeprefix("models:/")
    (path,) = (server_dir / "artifacts").rglob(f"{model_id}/artifacts/artifacts/{file}")
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A real MLflow server with NAME's version 1 (good, alias champion) and 2 (model file corrupted
    in the store) logged as training logs them, and 3 (good) and 4 (corrupt) the old way."""
    from mlflow import MlflowClient

    tmp = tmp_path_factory.mktemp("fetch")
    server = MlflowServer(tmp / "mlflow").wait_up()
    try:
        good = tmp / "good"
        write_tiny_bundle(good)
        assert log_version(server.url, good) == "1"
        assert log_version(server.url, good) == "2"
        stored = stored_model_file(tmp / "mlflow", server.url, NAME, "2", "model.onnx")
        stored.write_bytes(stored.read_bytes() + b"\0")
        assert log_old_style_version(server.url, good) == "3"
        corrupt = tmp / "corrupt"
        shutil.copytree(good, corrupt)
        (corrupt / "model.onnx").write_bytes((good / "model.onnx").read_bytes() + b"\0")
        assert log_old_style_version(server.url, corrupt) == "4"
        client = MlflowClient(server.url, server.url)
        client.set_registered_model_alias(NAME, "champion", "1")
        assert log_old_style_version(server.url, good, OTHER) == "1"
        client.set_registered_model_alias(OTHER, "champion", "1")
        client.create_registered_model(NEW)
        yield server
    finally:
        server.stop()


def run_fetch(url: str, uri: str, dest: Path, **extra_env: str) -> subprocess.CompletedProcess:
    """The entrypoint as KServe invokes it: `<entrypoint> <srcURI> <destDir>`, config from env."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FORECASTER_"))}
    env = {**clean, "PYTHONPATH": str(REPO), "FORECASTER_FETCH_TRACKING_URI": url, **extra_env}
    return subprocess.run(
        [sys.executable, "-m", "bundle.fetch", uri, str(dest)],
        cwd=dest.parent, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_fetch_then_serve(registry, tmp_path):
    dest = tmp_path / "mnt-models"
    dest.mkdir()
    result = run_fetch(registry.url, f"models:/{NAME}@champion", dest)
    assert result.returncode == 0, result.stderr
    assert "version 1" in result.stdout and "sha256 verified: model.onnx" in result.stdout
    assert sorted(p.name for p in dest.iterdir()) == ["metadata.json", "model.onnx"], "staging left behind"

    predictor = Predictor(tmp_path, "tiny", str(dest), "--reload-interval-s", "0")
    try:
        predictor.wait_ready()
        closes = windows(rows=2, window=WINDOW)
        answer = predictor.infer(closes)
        assert answer.status_code == 200, answer.text
        forecast = next(o for o in answer.json()["outputs"] if o["name"] == "forecast")
        assert np.allclose(forecast["data"], expected_forecast(closes), rtol=1e-5)
        # The chart's `helm test` script, as its Pod runs it, against this predictor.
        ok = run_helm_test(predictor.url, "tiny", WINDOW)
        assert ok.returncode == 0 and ok.stdout.startswith("OK tiny: forecast "), ok.stderr
        wrong = run_helm_test(predictor.url, "other", WINDOW, timeout_s=1)
        assert wrong.returncode == 1 and "FAIL other" in wrong.stderr and "not ready in time" in wrong.stderr
        short = run_helm_test(predictor.url, "tiny", WINDOW - 1)
        assert short.returncode == 1 and "FAIL tiny: inference answered 4" in short.stderr
    finally:
        predictor.stop()


def run_helm_test(url: str, model: str, window: int, timeout_s: int = 30) -> subprocess.CompletedProcess:
    script = (REPO / "helm" / "petr4-forecaster" / "files" / "helm_test.py").read_text()
    env = {
        "PATH": os.environ["PATH"], "FORECASTER_TEST_URL": url, "FORECASTER_TEST_MODEL": model,
        "FORECASTER_TEST_WINDOW": str(window), "FORECASTER_TEST_TIMEOUT_S": str(timeout_s),
    }  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("version", ["1", "3"], ids=["logged-model", "old-style"])
def test_pinned_version_of_either_layout(registry, tmp_path, version):
    """Only the bundle's files land in dest: not the logged model's MLmodel, code or examples."""
    dest = tmp_path / "pinned"
    result = run_fetch(registry.url, f"models:/{NAME}/{version}", dest)
    assert result.returncode == 0, result.stderr
    assert f"= version {version} " in result.stdout
    assert sorted(p.name for p in dest.iterdir()) == ["metadata.json", "model.onnx"]


@pytest.mark.parametrize("version", ["1", "3"], ids=["logged-model", "old-style"])
def test_the_predictor_serves_either_layout_straight_from_the_registry(registry, tmp_path, version):
    """bundle.source.BundleSource (the predictor's `--model-source models:/...`) reads both layouts."""
    predictor = Predictor(
        tmp_path, "tiny", f"models:/{NAME}/{version}", "--tracking-uri", registry.url,
        "--reload-interval-s", "0", "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    try:
        predictor.wait_ready()
        closes = windows(rows=2, window=WINDOW)
        answer = predictor.infer(closes)
        assert answer.status_code == 200, answer.text
        forecast = next(o for o in answer.json()["outputs"] if o["name"] == "forecast")
        assert np.allclose(forecast["data"], expected_forecast(closes), rtol=1e-5)
        assert predictor.get("/v2/models/tiny").json()["versions"] == [version]
        (cached,) = (tmp_path / "cache").rglob("metadata.json")
        assert sorted(p.name for p in cached.parent.iterdir()) == ["metadata.json", "model.onnx"]
    finally:
        predictor.stop()


def test_the_gate_scores_a_champion_of_either_layout(registry, tmp_path):
    """training.registry.champion (the gate's re-scoring) reads both layouts and refuses a corrupt one."""
    import mlflow
    from mlflow import MlflowClient

    from training.registry import ChampionUnavailableError, champion

    client = MlflowClient(registry.url, registry.url)
    mlflow.set_tracking_uri(registry.url)
    mlflow.set_registry_uri(registry.url)  # champion() downloads models:/ through the global registry
    for alias, version in (("logged", "1"), ("old", "3"), ("bad-logged", "2"), ("bad-old", "4")):
        client.set_registered_model_alias(NAME, alias, version)
    try:
        for alias, version in (("logged", "1"), ("old", "3")):
            found, bundle = champion(client, NAME, alias, tmp_path / alias)
            assert found == version and bundle.metadata.model_name == "tiny"
            assert OnnxForecaster(bundle).predict(windows(2)) == pytest.approx(expected_forecast(windows(2)))
        for alias, version in (("bad-logged", "2"), ("bad-old", "4")):
            with pytest.raises(ChampionUnavailableError, match="does not match its sha256") as raised:
                champion(client, NAME, alias, tmp_path / alias)
            assert raised.value.version == version
        assert champion(client, NAME, "nobody", tmp_path / "none") is None
    finally:
        for alias in ("logged", "old", "bad-logged", "bad-old"):
            client.delete_registered_model_alias(NAME, alias)


REFUSAL_IDS = [
    "no-ref", "wrong-scheme", "missing-version", "missing-alias", "missing-model", "checksum",
    "checksum-old-style",
    "shard-duplicate", "shard-empty-item", "shard-without-prefix", "shard-nothing-fetched",
]  # fmt: skip


@pytest.mark.parametrize(
    ("uri", "code", "message"),
    [
        (f"models:/{NAME}", EXIT_USAGE, "bad model URI"),
        (f"s3://bucket/{NAME}", EXIT_USAGE, "bad model URI"),
        (f"models:/{NAME}/9", EXIT_NOT_FOUND, f"model '{NAME}' has no version 9 in the registry"),
        (f"models:/{NAME}@nobody", EXIT_NOT_FOUND, f"model '{NAME}' has no alias 'nobody' in the registry"),
        ("models:/no-such-forecaster/1", EXIT_NOT_FOUND, "'no-such-forecaster' has no version 1"),
        (f"models:/{NAME}/2", EXIT_INVALID, "does not match its sha256"),
        (f"models:/{NAME}/4", EXIT_INVALID, "does not match its sha256"),
        (f"models:/{NAME}@champion,{NAME}/1", EXIT_USAGE, f"{NAME} listed twice"),
        (f"models:/{NAME}@champion,", EXIT_USAGE, "bad model URI 'models:/'"),
        (f"{NAME}@champion,{OTHER}@champion", EXIT_USAGE, "a list starts with models:/"),
        (f"models:/{NEW}@champion,{NAME}/2", EXIT_NOT_FOUND, "none of the 2 models could be fetched"),
    ],
    ids=REFUSAL_IDS,
)
def test_refusals(registry, tmp_path, uri, code, message):
    dest = tmp_path / "mnt-models"
    dest.mkdir()
    result = run_fetch(registry.url, uri, dest)
    assert result.returncode == code, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert list(dest.iterdir()) == [], "nothing may be left where the predictor looks"


# --- a universe shard: several models in one URI ---------------------------------------------------
def test_shard_fetches_each_model_into_its_directory(registry, tmp_path):
    dest = tmp_path / "mnt-models"
    (dest / ".fetch-killed").mkdir(parents=True)  # a run killed midway left its staging behind
    (dest / ".fetch-killed" / "model.onnx").write_bytes(b"partial")
    result = run_fetch(registry.url, f"models:/{NAME}@champion,{OTHER}/1", dest)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in dest.iterdir()) == [OTHER, NAME], "one directory per model, no staging"
    # (the predictor serves every subdirectory: nothing else may be left there)
    for name in (NAME, OTHER):
        assert sorted(p.name for p in (dest / name).iterdir()) == ["metadata.json", "model.onnx"]
        load_bundle(dest / name)  # every file against its sha256 again, as the predictor does
        assert "= version 1 " in result.stdout and f"into {dest / name};" in result.stdout
    assert result.stdout.rstrip().endswith(f"2 of 2 models fetched into {dest}")
    assert "skipped" not in result.stderr


def test_shard_skips_a_model_without_champion_or_with_a_bad_bundle(registry, tmp_path):
    """A new ticker whose training failed (no champion) and a corrupt bundle do not keep the shard's
    other model from being served: each is skipped with one line, the run succeeds."""
    dest = tmp_path / "mnt-models"
    dest.mkdir()
    result = run_fetch(registry.url, f"models:/{NEW}@champion,{OTHER}@champion,models:/{NAME}/2", dest)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in dest.iterdir()] == [OTHER]
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 2, result.stderr
    assert f"models:/{NEW}@champion: model '{NEW}' has no alias 'champion'" in skipped[0]
    assert f"models:/{NAME}/2: version 2 of '{NAME}' is refused" in skipped[1]
    assert "does not match its sha256" in skipped[1]
    assert result.stdout.rstrip().endswith(f"1 of 3 models fetched into {dest}")


def test_shard_fails_when_mlflow_is_unavailable(tmp_path):
    """Not a skip: the init container fails and is restarted, rather than starting a revision
    without models that a transient outage hid."""
    from tests.integration.servers import refused_port

    dest = tmp_path / "mnt-models"
    dest.mkdir()
    uri = f"models:/{NAME}@champion,{OTHER}@champion"
    with refused_port() as port:
        result = run_fetch(f"http://127.0.0.1:{port}", uri, dest, FORECASTER_FETCH_MLFLOW_RETRIES="0")
    assert result.returncode == EXIT_UNAVAILABLE, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"cannot resolve alias 'champion' of '{NAME}'" in errors[0], result.stderr
    assert list(dest.iterdir()) == []


# --- a hostile bundle: files named outside its folder (issue 23) -------------------------------------
HOSTILE = "hostile-forecaster"


def hostile_metadata(bundle_dir: Path, file: str) -> LoadedBundle:
    """`bundle_dir`'s metadata.json rewritten by hand to name `file` for fp32, with the right sha256
    (an attacker's metadata: the schema refuses it, so it is built without validation)."""
    good = load_bundle(bundle_dir)
    entry = good.metadata.variants["fp32"]
    variants = {"fp32": VariantFile.model_construct(file=file, sha256=entry.sha256, nodes=entry.nodes)}
    meta = good.metadata.model_copy(update={"variants": variants})
    (bundle_dir / "metadata.json").write_text(meta.model_dump_json(indent=2))
    return LoadedBundle(bundle_dir, meta)


@pytest.fixture(scope="module")
def hostile_registry(registry, tmp_path_factory):
    """HOSTILE's versions, each naming its model file outside the bundle's folder with the file's
    right sha256 there: 1 old-style and 2 a logged model naming an absolute path (a file that exists
    where the fetch runs), 3 a logged model naming `../code/bundle/__init__.py` (inside the download,
    outside the bundle: the pyfunc's own code, whose bytes anyone knows)."""
    import mlflow

    from training import registry as training_registry

    tmp = tmp_path_factory.mktemp("hostile")
    elsewhere = tmp / "elsewhere" / "model.onnx"
    good = tmp / "good"
    write_tiny_bundle(good)
    elsewhere.parent.mkdir()
    shutil.copy(good / "model.onnx", elsewhere)

    old = tmp / "old"
    shutil.copytree(good, old)
    hostile_metadata(old, str(elsewhere))
    assert log_old_style_version(registry.url, old, HOSTILE) == "1"

    client, experiment_id = _experiment(registry.url)
    for version, name in (("2", str(elsewhere)), ("3", "../code/bundle/__init__.py")):
        logged = tmp / f"logged{version}" / "bundle"
        shutil.copytree(good, logged)
        if name.startswith(".."):  # where log_model reads it from; MLflow stores it as artifacts/<name>
            code = logged.parent / "code" / "bundle" / "__init__.py"
            code.parent.mkdir(parents=True)
            shutil.copy(REPO / "bundle" / "__init__.py", code)
            bundle = hostile_metadata(logged, name)
            variants = {"fp32": bundle.metadata.variants["fp32"].model_copy(
                update={"sha256": sha256_bytes(code.read_bytes())})}  # fmt: skip
            meta = bundle.metadata.model_copy(update={"variants": variants})
            (logged / "metadata.json").write_text(meta.model_dump_json(indent=2))
            bundle = LoadedBundle(logged, meta)
        else:
            bundle = hostile_metadata(logged, name)
        with mlflow.start_run(experiment_id=experiment_id) as run:
            model_id = training_registry.log_bundle_model(bundle, HOSTILE, windows(1, WINDOW)[0], {})
        assert training_registry.register(client, HOSTILE, model_id, run.info.run_id, {}) == version
    return registry, elsewhere


@pytest.mark.parametrize(
    "version", ["1", "2", "3"], ids=["old-style-absolute", "logged-absolute", "logged-dotdot"]
)
def test_a_bundle_naming_a_file_outside_its_folder_is_refused_and_nothing_lands(
    hostile_registry, tmp_path, version
):
    """Before: the file outside was "sha256 verified" and dest kept only metadata.json."""
    registry_server, elsewhere = hostile_registry
    work = tmp_path / "work"
    dest = work / "mnt-models"
    dest.mkdir(parents=True)
    before = elsewhere.read_bytes()
    result = run_fetch(registry_server.url, f"models:/{HOSTILE}/{version}", dest)
    assert result.returncode == EXIT_INVALID, (result.returncode, result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "not a file name inside the bundle's folder" in errors[0], result.stderr
    assert "sha256 verified" not in result.stdout
    assert list(dest.iterdir()) == [] and list(work.iterdir()) == [dest], "nothing outside dest either"
    assert elsewhere.read_bytes() == before


def test_the_predictor_refuses_such_a_bundle_from_the_registry(hostile_registry, tmp_path):
    registry_server, _ = hostile_registry
    predictor = Predictor(
        tmp_path, "tiny", f"models:/{HOSTILE}/1", "--tracking-uri", registry_server.url,
        "--reload-interval-s", "0", "--cache-dir", str(tmp_path / "cache"), "--load-retry-max-s", "1",
    )  # fmt: skip
    try:
        predictor.wait_live()
        wait_for(lambda: "refused" in predictor.get("/v2/health/ready").text, 60, "the load to fail")
        assert predictor.infer(windows(1)).status_code == 503
    finally:
        predictor.stop()
    assert "not a file name inside the bundle's folder" in predictor.output()


# --- bounded waits: a version that is no registry version fails at once (issue 23) -------------------
@pytest.mark.parametrize(
    "uri",
    [f"models:/{NAME}/99999999999999999999999", f"models:/{NAME}/9223372036854775808", f"models:/{NAME}/0",
     f"models:/{NAME}/-1", f"models:/{NAME}/latest", f"models:/{OTHER}@champion,{NAME}/99999999999999999999"],
    ids=["beyond-int64", "int64-max-plus-1", "zero", "negative", "word", "in-a-shard"],
)  # fmt: skip
def test_a_version_out_of_range_exits_6_at_once_without_asking_mlflow(tmp_path, uri):
    """Before: it passed validation and MLflow's client retried the server's 500 for minutes. The
    tracking URI here is a listening socket that never answers: asking it would hang past 30 s."""
    with black_hole() as url:
        dest = tmp_path / "mnt-models"
        dest.mkdir()
        started = time.monotonic()
        result = run_fetch(url, uri, dest)
        elapsed = time.monotonic() - started
    assert result.returncode == EXIT_BAD_VERSION, (result.returncode, result.stderr)
    assert "is not a registry version" in result.stderr and elapsed < 20, (elapsed, result.stderr)
    assert list(dest.iterdir()) == []


def test_no_credential_of_the_tracking_uri_reaches_any_line(tmp_path):
    """A tracking URI with a password whose MLflow is down: the error names the URI, masked."""
    from tests.integration.servers import refused_port

    dest = tmp_path / "mnt-models"
    dest.mkdir()
    with refused_port() as port:
        url = f"http://forecaster:s3cr3t-pw@127.0.0.1:{port}"
        result = run_fetch(url, f"models:/{NAME}@champion", dest, FORECASTER_FETCH_MLFLOW_RETRIES="0")
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
    assert "http://***@127.0.0.1" in result.stderr


@contextmanager
def black_hole():
    """An http:// URL whose socket accepts connections (the kernel's backlog) and never answers."""
    import socket

    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        yield f"http://127.0.0.1:{hole.getsockname()[1]}"
