"""The long-lived pods run images without torch: the monitor's import closure (a fresh interpreter
importing `monitor.__main__`) loads no torch, Lightning, scikit-learn or matplotlib, and the training
modules it does load are exactly those Dockerfile.monitor copies; the chart runs the monitor and
MLflow on their own images, training alone on the torch image."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.deploy.conftest import REPO, render_docs

HEAVY = ("torch", "lightning", "torchmetrics", "sklearn", "matplotlib", "onnxscript")


def test_monitor_import_closure_is_torch_free():
    code = (
        "import json, sys; import monitor.__main__; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{HEAVY!r} + ('training', 'marketdata', 'retrainer'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert not [m for m in loaded if m.split(".")[0] in HEAVY], loaded
    training = {m for m in loaded if m.startswith("training")}
    dockerfile = (REPO / "Dockerfile.monitor").read_text()
    (copy,) = re.findall(r"^COPY (training/.*) \./training/$", dockerfile, flags=re.MULTILINE)
    copied = {"training" if f == "training/__init__.py" else "training." + f[9:-3] for f in copy.split()}
    assert training == copied, (training, copied)
    retrainer = {m for m in loaded if m.split(".")[0] == "retrainer"}
    (copy,) = re.findall(r"^COPY (retrainer/.*) \./retrainer/$", dockerfile, flags=re.MULTILINE)
    copied = {"retrainer" if f == "retrainer/__init__.py" else "retrainer." + f[10:-3] for f in copy.split()}
    assert retrainer == copied == {"retrainer", "retrainer.settings", "retrainer.kube"}, (retrainer, copied)
    if any(m.startswith("marketdata") for m in loaded):  # training.data's readers and rules
        assert re.search(r"^COPY marketdata \./marketdata$", dockerfile, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["python", "-m", "monitor"]' in dockerfile and '".[monitor]"' in dockerfile


def test_training_image_copies_exactly_the_rollout_modules_training_imports():
    """The champion history's writer (rollout/history.py) is shared with the serving image's
    `python -m rollout`; the training image copies only what training's import closure loads."""
    code = "import json, sys; import training.__main__, training.pipeline; " + (
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('rollout', 'retrainer'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    dockerfile = (REPO / "Dockerfile.train").read_text()
    (copy,) = re.findall(r"^COPY (rollout/.*) \./rollout/$", dockerfile, flags=re.MULTILINE)
    copied = {"rollout" if f == "rollout/__init__.py" else "rollout." + f[8:-3] for f in copy.split()}
    assert loaded == copied == {"rollout", "rollout.history"}, (loaded, copied)
    assert "rollout.history" in re.search(r'python -c "import ([^;]*);', dockerfile).group(1)


def test_long_lived_pods_run_torch_free_images():
    images = {}
    for d in render_docs():
        if d["kind"] in ("Deployment", "CronJob", "Job"):
            spec = d["spec"].get("jobTemplate", d)["spec"]["template"]["spec"]
            images[d["metadata"]["labels"]["app.kubernetes.io/component"]] = {
                c["image"] for c in spec.get("initContainers", []) + spec["containers"]
            }
    registry = "registry.example.org/ml"
    assert images == {
        # mlflow server, and its read-only port (NGINX's unprivileged image)
        "mlflow": {
            f"{registry}/petr4-forecaster-mlflow:0.1.0",
            "docker.io/nginxinc/nginx-unprivileged:1.30.0-alpine",
        },
        "monitor": {f"{registry}/petr4-forecaster-monitor:0.1.0"},
        "retrainer": {f"{registry}/petr4-forecaster-serve:0.1.0"},
        # training, then the torch-free `python -m rollout pin` (templates/rollout/)
        "training": {f"{registry}/petr4-forecaster-train:0.1.0", f"{registry}/petr4-forecaster-serve:0.1.0"},
    }
    mlflow = (REPO / "Dockerfile.mlflow").read_text()
    assert "grep -E '^(mlflow|psycopg|boto3)==' constraints.txt" in mlflow and "torch==" not in mlflow
