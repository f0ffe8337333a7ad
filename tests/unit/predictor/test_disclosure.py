"""What a model that does not serve says, and to whom (issue 23), in-process on the app the predictor
assembles: to anyone, its name and state; its source, paths, the registry's address and MLflow's own
words only to a caller holding the configured token; a credential in a URI to nobody, in no answer
and no log line."""

from __future__ import annotations

import logging

import pytest

from bundle.redact import RedactedRecord, redact
from predictor.model import STATES
from tests.integration.servers import refused_port
from tests.tiny_bundle import windows
from tests.unit.predictor.conftest import make_model

TOKEN = "the-token"
SECRET = "s3cret-pw"


@pytest.fixture
def registry_down(monkeypatch):
    """A tracking URI with a password whose MLflow is down (a refused port, no retries)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with refused_port() as port:
        yield f"http://forecaster:{SECRET}@127.0.0.1:{port}"


def failed(source, **settings):
    model = make_model(source, **settings)
    assert not model.try_reload() and model.attempted
    return model


def answers(client, headers=None) -> dict[str, tuple[int, str]]:
    """Every open answer that names a model's state, and the inference answers."""
    rows = windows(1).tolist()
    v2 = {"inputs": [{"name": "closes", "shape": [1, 8], "datatype": "FP64", "data": rows}]}
    item = {"type": "univariate_time_series", "name": "s", "frequency": "D", "series": rows[0]}
    series = {"model": "tiny", "inputs": [item], "options": {"horizon": 1}}
    calls = {
        "ready": client.get("/v2/health/ready", headers=headers),
        "model-ready": client.get("/v2/models/tiny/ready", headers=headers),
        "version-ready": client.get("/v2/models/tiny/versions/1/ready", headers=headers),
        "metadata": client.get("/v2/models/tiny", headers=headers),
        "v1-ready": client.get("/v1/models/tiny", headers=headers),
        "infer": client.post("/v2/models/tiny/infer", json=v2, headers=headers),
        "predict": client.post("/v1/models/tiny:predict", json={"instances": rows}, headers=headers),
        "series": client.post("/v1/timeseries/forecast", json=series, headers=headers),
    }  # fmt: skip
    return {name: (r.status_code, r.text) for name, r in calls.items()}


@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token-configured", "token-not-given"])
def test_without_the_token_answers_carry_names_and_states_only(tmp_path, serve_app, registry_down, token):
    hidden = tmp_path / "private-volume" / "bundle"
    for source, extra in ((hidden, {}), ("models:/tiny@champion", {"tracking_uri": registry_down})):
        model = failed(source, api_token=token, **extra)
        client = serve_app(model)
        state = STATES[model.state]
        for name, (status, text) in answers(client).items():
            for leak in (SECRET, "forecaster", "127.0.0.1", "private-volume", "models:/", "MlflowException"):
                assert leak not in text, (name, text)
            if name in ("ready", "model-ready", "version-ready") or (name != "metadata" and not token):
                assert status == 503, (name, status, text)
        assert state in answers(client)["ready"][1] and "tiny" in answers(client)["ready"][1]
        model.stop()


def test_with_the_token_answers_say_why_with_credentials_masked(tmp_path, serve_app, registry_down):
    hidden = tmp_path / "private-volume" / "bundle"
    auth = {"authorization": f"Bearer {TOKEN}"}
    directory = failed(hidden, api_token=TOKEN)
    seen = answers(serve_app(directory), auth)
    for name in ("ready", "model-ready", "version-ready", "infer", "series"):
        assert seen[name][0] == 503 and str(hidden) in seen[name][1], (name, seen[name])
    directory.stop()

    remote = failed("models:/tiny@champion", api_token=TOKEN, tracking_uri=registry_down)
    seen = answers(serve_app(remote), auth)
    for name in ("ready", "model-ready", "infer"):
        status, text = seen[name]
        assert (
            status == 503 and "http://***@127.0.0.1" in text and "cannot load models:/tiny@champion" in text
        )
        assert SECRET not in text and "forecaster:" not in text
    remote.stop()


def test_each_failure_has_its_state(tmp_path):
    from tests.tiny_bundle import write_tiny_bundle

    assert failed(tmp_path / "nothing").state == "not_found"
    write_tiny_bundle(tmp_path / "corrupt")
    (tmp_path / "corrupt" / "model.onnx").write_bytes(b"corrupt")
    assert failed(tmp_path / "corrupt").state == "refused"
    write_tiny_bundle(tmp_path / "wild", bias=500.0)  # fails its self-test
    assert failed(tmp_path / "wild").state == "refused"
    loading = make_model(tmp_path / "nothing")
    assert loading.not_ready_reason() == STATES["loading"]
    loading.skip("the registry did not answer")
    assert loading.state == "unavailable" and "registry" in loading.not_ready_reason()


def test_no_log_line_carries_a_credential(tmp_path, registry_down, caplog, monkeypatch):
    """Every record of the process is redacted once bundle.redact is installed (the predictor's and
    the storage initializer's entry points install it): the loader's lines and MLflow's errors."""
    monkeypatch.setattr(logging, "_logRecordFactory", RedactedRecord)
    with caplog.at_level(logging.DEBUG):
        model = failed("models:/tiny@champion", tracking_uri=registry_down)
        logging.getLogger("predictor.model").exception("with a traceback: %s", registry_down, exc_info=(
            RuntimeError, RuntimeError(f"API request to {registry_down}/api failed"), None))  # fmt: skip
    formatted = [caplog.handler.format(r) for r in caplog.records]
    assert formatted and not [line for line in formatted if SECRET in line]
    assert any("http://***@127.0.0.1" in line for line in formatted)
    assert SECRET not in model.not_ready_reason(detailed=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("API request to http://u:p@h:5000/api failed", "API request to http://***@h:5000/api failed"),
        ("postgresql://a:p@ss@db/x?sslpassword=zz&x=1", "postgresql://***@db/x?sslpassword=***&x=1"),
        ("s3://bucket/key?X-Amz-Signature=abc&token=t", "s3://bucket/key?X-Amz-Signature=***&token=***"),
        ("models:/petr4@champion and user@example.com", "models:/petr4@champion and user@example.com"),
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected
