"""The same answer everywhere, against a real `mlflow server` on loopback.

Training on the sample logs its bundle as an MLflow LoggedModel and registers version 1 from it.
The model's own input example (the last window of real closes the job read) is answered by
`mlflow.pyfunc.load_model("models:/<name>@champion")` in this process, by the predictor
(`--model-source models:/<name>@champion`, v2 REST) and by `mlflow models serve -m
models:/<name>@champion --env-manager local` (POST /invocations with the model's serving input
example): the forecast and every interval bound agree to 1e-9 across the three.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.models import Model

from bundle.outputs import outputs
from tests.conftest import fast_settings
from tests.integration.servers import MlflowServer, ModelServe, Predictor
from training import pipeline

pytestmark = pytest.mark.slow
NAME = "aapl-forecaster"
CHAMPION = f"models:/{NAME}@champion"
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """(tmp, the MLflow server, the training result, its experiment id): one training run
    registered over http."""
    tmp = tmp_path_factory.mktemp("logged")
    server = MlflowServer(tmp / "mlflow").wait_up()
    try:
        settings = fast_settings(tmp, tracking_uri=server.url, max_epochs=1)
        result = pipeline.run(settings)
        assert result.decision.promote
        mlflow.set_tracking_uri(server.url)
        mlflow.set_registry_uri(server.url)
        experiment = MlflowClient(server.url).get_experiment_by_name(settings.experiment).experiment_id
        yield tmp, server, result, experiment
    finally:
        server.stop()


def test_training_shows_one_logged_model_with_its_metrics(registered):
    _, server, result, experiment = registered
    client = MlflowClient(server.url, server.url)
    (model,) = mlflow.search_logged_models(experiment_ids=[experiment], output_format="list")
    version = client.get_model_version(NAME, "1")
    assert model.name == NAME and model.source_run_id == version.run_id
    assert version.source == f"models:/{model.model_id}"
    assert json.loads(model.tags["mlflow.modelVersions"]) == [{"name": NAME, "version": 1}]
    on_model = {m.key: m.value for m in model.metrics}
    assert on_model["mae"] == pytest.approx(result.metrics["mae"], rel=1e-12)
    assert on_model["winkler_80"] == pytest.approx(result.metrics["winkler_80"], rel=1e-12)


def test_pyfunc_the_predictor_and_mlflow_models_serve_give_the_same_answer(registered):
    tmp, server, result, _ = registered
    local = Path(mlflow.artifacts.download_artifacts(CHAMPION, dst_path=str(tmp / "champion")))
    loaded = Model.load(str(local)).load_input_example(str(local))  # a named tensor: {"closes": array}
    example = loaded["closes"]
    assert example.shape == (1, 60)
    declared = [o.name for o in outputs(i.coverage for i in result.metadata.intervals)]

    # 1. MLflow's pyfunc, in this process, on the input example as MLflow loads it
    frame = mlflow.pyfunc.load_model(CHAMPION).predict(loaded)
    pyfunc = {name: frame[name].to_numpy() for name in declared}

    # 2. The predictor's v2 answer, from the same alias
    predictor = Predictor(tmp, "aapl", CHAMPION, "--tracking-uri", server.url, "--reload-interval-s", "0",
                          "--cache-dir", str(tmp / "cache"))  # fmt: skip
    try:
        answer = predictor.wait_ready().infer(example)
        assert answer.status_code == 200, answer.text
        v2 = {o["name"]: np.asarray(o["data"]) for o in answer.json()["outputs"]}
    finally:
        predictor.stop()

    # 3. `mlflow models serve`, with the serving input example MLflow saved beside the model
    serve = ModelServe(tmp, CHAMPION, server.url)
    try:
        served = serve.wait_up().invocations((local / "serving_input_example.json").read_text())
        assert served.status_code == 200, served.text
        rows = served.json()["predictions"]
        invocations = {name: np.asarray([row[name] for row in rows]) for name in declared}
        short = serve.invocations(json.dumps({"inputs": example[:, 1:].tolist()}))
        assert short.status_code == 400 and "shape" in short.json()["message"], short.text
    finally:
        serve.stop()
    log = serve.output()
    assert "pip install" not in log and "Installing" not in log, "--env-manager local installs nothing"

    assert list(v2) == declared
    for name in declared:
        np.testing.assert_allclose(pyfunc[name], v2[name], rtol=0, atol=TOLERANCE, err_msg=name)
        np.testing.assert_allclose(invocations[name], v2[name], rtol=0, atol=TOLERANCE, err_msg=name)
    assert pyfunc["lower_80"][0] < pyfunc["forecast"][0] < pyfunc["upper_80"][0]
