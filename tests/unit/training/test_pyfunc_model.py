"""The bundle as an MLflow pyfunc, saved locally exactly as training logs it (no registry here).

It answers what the serving runtime answers, for either variant; refuses bad closes with MLflow's
INVALID_PARAMETER_VALUE (a 400 from `mlflow models serve`); holds no pickle; keeps the bundle's
files byte for byte; and, loaded in a fresh process, runs the `bundle` package it carries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.exceptions import MlflowException

from bundle import OnnxForecaster
from bundle.io import find_bundle, load_bundle, sha256_bytes
from bundle.outputs import columns
from tests.tiny_bundle import WINDOW, windows, write_tiny_bundle
from training import registry


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(the bundle, the saved pyfunc model directory, the loaded model)."""
    tmp = tmp_path_factory.mktemp("pyfunc")
    bundle = write_tiny_bundle(tmp / "bundle", int8=True)
    path = tmp / "model"
    mlflow.pyfunc.save_model(str(path), **registry.pyfunc_arguments(bundle, windows(1)[0]))
    return bundle, path, mlflow.pyfunc.load_model(str(path))


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_it_answers_what_the_runtime_answers(saved, variant):
    bundle, _, model = saved
    closes = windows(3)
    answer = model.predict(closes, params={"variant": variant} if variant != "fp32" else None)
    forecaster = OnnxForecaster(bundle, variant)
    expected = pd.DataFrame(columns(forecaster.forecast(closes), forecaster.outputs))
    assert list(answer.columns) == ["forecast", "lower_80", "upper_80", "lower_95", "upper_95"]
    pd.testing.assert_frame_equal(answer, expected, rtol=0, atol=1e-12)


def test_its_signature_names_the_input_and_the_declared_outputs(saved):
    _, path, model = saved
    signature = model.metadata.get_input_schema(), model.metadata.get_output_schema()
    (closes,) = signature[0].inputs
    assert closes.name == "closes" and closes.shape == (-1, WINDOW) and closes.type == np.float64
    assert signature[1].input_names() == ["forecast", "lower_80", "upper_80", "lower_95", "upper_95"]
    assert model.metadata.get_params_schema().params[0].name == "variant"
    example = json.loads((path / "input_example.json").read_text())
    np.testing.assert_array_equal(np.asarray(example), windows(1))


@pytest.mark.parametrize(
    ("closes", "message"),
    [
        (windows(1, WINDOW - 1), "shape"),  # MLflow's own check against the signature
        (np.where(np.arange(WINDOW) == 3, np.nan, windows(1)), "finite prices > 0"),
        (-windows(1), "finite prices > 0"),
    ],
    ids=["short-window", "nan", "negative"],
)
def test_bad_closes_are_refused_as_invalid_parameters(saved, closes, message):
    _, _, model = saved
    with pytest.raises(MlflowException, match=message) as raised:
        model.predict(closes)
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE"


def test_an_unknown_variant_is_refused(saved):
    _, _, model = saved
    with pytest.raises(MlflowException, match="variant"):
        model.predict(windows(1), params={"variant": "fp16"})


def test_no_pickle_and_the_bundle_files_byte_for_byte(saved):
    bundle, path, _ = saved
    assert not [p for p in path.rglob("*") if p.suffix in (".pkl", ".pickle", ".cloudpickle")]
    conf = yaml.safe_load((path / "MLmodel").read_text())["flavors"]["python_function"]
    assert conf["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in conf
    assert conf["model_code_path"].endswith("pyfunc_model.py") and conf["code"] == "code"
    found = find_bundle(path)
    assert load_bundle(found).metadata == bundle.metadata  # every file against its sha256
    for entry in bundle.metadata.variants.values():
        assert sha256_bytes((found / entry.file).read_bytes()) == entry.sha256
    assert sorted(p.name for p in found.iterdir()) == ["metadata.json", "model.int8.onnx", "model.onnx"]


def test_a_fresh_process_runs_the_bundle_package_the_model_carries(saved, tmp_path):
    """No checkout on the path: the `bundle` that answers is the copy inside the model."""
    _, path, model = saved
    code = (
        "import sys, json, numpy as np, mlflow.pyfunc\n"
        f"model = mlflow.pyfunc.load_model({str(path)!r})\n"
        "import bundle\n"
        f"closes = np.asarray({windows(2).tolist()!r})\n"
        "print(json.dumps({'bundle': bundle.__file__, "
        "'forecast': model.predict(closes)['forecast'].tolist()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",) and not k.startswith("MLFLOW_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["bundle"].startswith(str(path / "code" / "bundle"))
    np.testing.assert_allclose(answer["forecast"], model.predict(windows(2))["forecast"], rtol=0, atol=1e-12)
