"""Fixtures of the deployment tests: chart renders (helm-python-sdk), kustomize builds (kubectl with a
dead kubeconfig), CRD schemas from ../shared/crds turned into strict JSON Schema, and the scanners'
paths. Every tool is installed by the project (the `deploy` extra, scripts/system-deps.sh,
scripts/setup-checkov.sh): a missing one fails, never skips."""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, SHARED

CHART = REPO / "helm" / "petr4-forecaster"
MANIFESTS = REPO / "manifests"
OVERLAYS = ("standard", "knative", "external-mlflow")
CRDS = SHARED / "crds"
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
RELEASE = NAMESPACE = "petr4-forecaster"
KUBE_VERSIONS = ("1.30", "1.33")
CRD_FILES = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "serving.kserve.io_inferenceservices.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
}
MODES = ("Standard", "Knative")
DOCKERFILES = ("Dockerfile.serve", "Dockerfile.train", "Dockerfile.monitor", "Dockerfile.mlflow")
# Kinds of the realized-accuracy monitor's objects (a Deployment and Service per model; the Role that
# writes the calibration ConfigMaps) and of the retraining webhook receiver's.
MONITOR_KINDS = (
    "Deployment",
    "Service",
    "ServiceMonitor",
    "NetworkPolicy",
    "ServiceAccount",
    "Role",
    "RoleBinding",
)
RETRAINER_KINDS = ("Deployment", "Service", "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding")


def load_script(name: str):
    """A module from scripts/ (their file names have dashes)."""
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def multi_values(mode: str) -> dict:
    values = yaml.safe_load((HERE / "values-multi.yaml").read_text())
    values["kserve"]["deploymentMode"] = mode
    return values


RUNBOOK = "https://git.example.org/ml/petr4-forecaster/-/blob/main/docs/runbook.md"  # the kustomize base's
# Under every test render unless a test sets these keys itself: the registry the chart requires, and
# the prometheus-operator objects as on a cluster that serves their CRDs (offline,
# `.Capabilities.APIVersions.Has` is false, so the chart's default leaves them out; see
# test_defaults_that_fail_early_or_work).
TEST_DEFAULTS: dict = {
    "images": {"registry": "registry.example.org/ml"},  # the kustomize base's placeholder
    "monitoring": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "runbookBaseUrl": RUNBOOK,
    },
}


def merged(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@functools.cache
def _render(key: str) -> dict[str, str]:
    import helm_python

    values = yaml.safe_load(key)
    with helm_python.Chart.load(CHART) as chart:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def render(values: dict | None = None, defaults: bool = True) -> dict[str, str]:
    """helm template: template path -> text (cached by values), over TEST_DEFAULTS unless told not to."""
    values = merged(TEST_DEFAULTS, values or {}) if defaults else values or {}
    return _render(yaml.safe_dump(values, sort_keys=True))


def docs_of(texts) -> list[dict]:
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


def render_docs(values: dict | None = None, defaults: bool = True) -> list[dict]:
    return docs_of(text for path, text in render(values, defaults).items() if path.endswith(".yaml"))


@functools.cache
def kustomize(overlay: str) -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing (the machine image ships it)"
    dead = HERE / "dead-kubeconfig.yaml"
    env = {**os.environ, "KUBECONFIG": str(dead)}
    result = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS / "overlays" / overlay)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def kustomize_docs(overlay: str) -> list[dict]:
    return docs_of([kustomize(overlay)])


def key(doc: dict) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


# The variants every validation runs over: name -> documents.
def variants() -> dict[str, list[dict]]:
    out = {}
    for mode in MODES:
        out[f"chart-default-{mode}"] = render_docs({"kserve": {"deploymentMode": mode}})
        out[f"chart-multi-{mode}"] = render_docs(multi_values(mode))
    out["chart-external-mlflow"] = render_docs(
        {
            "mlflow": {
                "enabled": False,
                "externalUri": "https://mlflow.example.org",
                "auth": {"existingSecret": "mlflow-auth"},
            }
        }
    )
    out["chart-hatches"] = render_docs(hatches_values())
    out["chart-mlflow-postgresql"] = render_docs(POSTGRESQL_VALUES)
    for mode in MODES:
        out[f"chart-universe-{mode}"] = render_docs(universe_values(mode))
    for overlay in OVERLAYS:
        out[f"kustomize-{overlay}"] = kustomize_docs(overlay)
    return out


# A universe beside the default model: 5 tickers in shards of 2 (3 InferenceServices, the last of
# one ticker), one pinned version.
UNIVERSE = {
    "enabled": True,
    "name": "ibov",
    "tickers": ["VALE3.SA", "ITUB4.SA", "BBAS3.SA", "WEGE3.SA", "ABEV3.SA"],
    "shardSize": 2,
    "parallelism": 2,
    "versions": {"ITUB4.SA": 7},
}


# MLflow in production shape: PostgreSQL from an existing Secret, artifacts in an object store with
# credentials from another, two replicas, the database's and the store's NetworkPolicy peers.
POSTGRESQL_VALUES: dict = {
    "mlflow": {
        "replicas": 2,
        "backend": {
            "type": "postgresql",
            "postgresql": {
                "existingSecret": "mlflow-db",
                "uriKey": "uri",
                "egress": [{"ipBlock": {"cidr": "10.20.0.0/24"}}],
            },
        },
        "artifacts": {
            "destination": "s3://mlflow-artifacts/petr4",
            "existingSecret": "mlflow-s3",
            "egress": [{"ipBlock": {"cidr": "10.30.0.10/32"}}],
        },
    }
}


def universe_values(mode: str = "Standard", **universe) -> dict:
    return {"kserve": {"deploymentMode": mode}, "universe": {**UNIVERSE, **universe}}


def hatches_values() -> dict:
    """values-hatches.yaml: every escape hatch set at once."""
    return yaml.safe_load((HERE / "values-hatches.yaml").read_text())


VARIANT_NAMES = (
    [f"chart-default-{m}" for m in MODES]
    + [f"chart-multi-{m}" for m in MODES]
    + ["chart-external-mlflow", "chart-hatches", "chart-mlflow-postgresql"]
    + [f"chart-universe-{m}" for m in MODES]
    + [f"kustomize-{o}" for o in OVERLAYS]
)


@pytest.fixture(scope="session")
def all_variants() -> dict[str, list[dict]]:
    return variants()


# --- CRD schemas -> strict JSON Schema (../shared/crds/README.md) ---------------------------------
def strict_schema(node):
    """Drop x-kubernetes-*, nullable -> null type, int-or-string -> anyOf, and forbid unknown
    properties wherever the CRD lists properties and does not preserve unknown fields."""
    if isinstance(node, list):
        return [strict_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **out}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="session")
def crd_validators() -> dict:
    import jsonschema

    validators = {}
    for (api_version, kind), name in CRD_FILES.items():
        path = CRDS / name
        assert path.is_file(), f"{path} is missing: the tests read ../shared/crds"
        crd = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        version = next(
            v for v in crd["spec"]["versions"] if f"{crd['spec']['group']}/{v['name']}" == api_version
        )
        schema = strict_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
        validators[(api_version, kind)] = jsonschema.Draft7Validator(schema)
    return validators


def tool(name: str) -> str:
    """A scanner installed into the venv by the `deploy` extra; missing is a failure, not a skip."""
    path = VENV_BIN / name
    assert path.exists(), f"{name} is missing from {VENV_BIN}: install the deploy extra (scripts/setup.sh)"
    return str(path)


@pytest.fixture(scope="session")
def checkov() -> str:
    """checkov lives in its own venv (.venv-checkov): its pins conflict with the project's."""
    path = REPO / ".venv-checkov" / "bin" / "checkov"
    if not path.exists():  # install it the way setup does (PyPI only), once
        subprocess.run(["bash", str(REPO / "scripts" / "setup-checkov.sh")], check=True, timeout=900)
    assert path.exists(), "scripts/setup-checkov.sh did not install checkov"
    return str(path)


@pytest.fixture(scope="session")
def scan_dir(tmp_path_factory, all_variants) -> Path:
    """What the scanners read: the Dockerfiles, and every chart render and kustomize build."""
    root = tmp_path_factory.mktemp("scan")
    for name in DOCKERFILES:
        shutil.copy(REPO / name, root / name)
    for name, docs in all_variants.items():
        (root / f"{name}.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return root
