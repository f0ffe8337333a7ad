"""The in-cluster MLflow's stores in the chart: SQLite on the PVC by default (one replica, as before),
or PostgreSQL with its URI read from an existing Secret (never in values or in any rendered text),
migrated by a pre-install/pre-upgrade hook Job (`mlflow db upgrade`) that the server's init
container waits for, artifacts on the PVC or in an object store (credentials from another Secret);
more than one replica only with PostgreSQL and an object store. (tests/integration/mlflow_backend
runs the rendered migration and wait commands against a real PostgreSQL.)"""

from __future__ import annotations

import helm_python
import pytest

from tests.deploy.conftest import (
    CHART,
    KUBE_VERSIONS,
    POSTGRESQL_VALUES,
    REPO,
    TEST_DEFAULTS,
    merged,
    render,
    render_docs,
)
from tests.deploy.test_docs import yaml_blocks

MLFLOW = "petr4-forecaster-mlflow"
JOB = "petr4-forecaster-mlflow-db-upgrade"
MIGRATION = "petr4-forecaster-mlflow-migration"
URI_FROM_SECRET = {"secretKeyRef": {"name": "mlflow-db", "key": "uri"}}
HOOK = "pre-install,pre-upgrade"


def by_kind(docs, kind) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def mlflow_pod(docs) -> dict:
    return by_kind(docs, "Deployment")[MLFLOW]["spec"]["template"]["spec"]


def postgresql(**mlflow) -> dict:
    backend = {"type": "postgresql", "postgresql": {"existingSecret": "mlflow-db"}}
    return {"mlflow": {"backend": backend, **mlflow}}


def test_sqlite_stays_the_default_and_only_the_sidecar_changed():
    docs = render_docs()
    deployment = by_kind(docs, "Deployment")[MLFLOW]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = mlflow_pod(docs)
    assert "initContainers" not in pod
    mlflow, sidecar = pod["containers"]
    args = mlflow["args"]
    assert args[args.index("--backend-store-uri") + 1] == "sqlite:////data/mlflow.db"
    assert args[args.index("--artifacts-destination") + 1] == "/data/artifacts"
    assert "MLFLOW_BACKEND_STORE_URI" not in {e["name"] for e in mlflow["env"]} and "envFrom" not in mlflow
    assert {"name": "data", "mountPath": "/data"} in mlflow["volumeMounts"]
    assert pod["volumes"][0] == {"name": "data", "persistentVolumeClaim": {"claimName": MLFLOW}}
    assert sidecar["command"][0] == "nginx"
    assert MLFLOW in by_kind(docs, "PersistentVolumeClaim")
    assert not {JOB} & set(by_kind(docs, "Job")) and MIGRATION not in by_kind(docs, "ServiceAccount")
    assert by_kind(docs, "NetworkPolicy")[MLFLOW]["spec"]["egress"] == []  # it calls nothing


def test_postgresql_from_a_secret_with_an_object_store_and_two_replicas():
    docs = render_docs(POSTGRESQL_VALUES)
    deployment = by_kind(docs, "Deployment")[MLFLOW]
    assert deployment["spec"]["replicas"] == 2 and "strategy" not in deployment["spec"]  # rolling
    pod = mlflow_pod(docs)
    mlflow, _ = pod["containers"]
    args = mlflow["args"]
    assert "--backend-store-uri" not in args  # read from the environment, from the Secret
    env = {e["name"]: e for e in mlflow["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"] == URI_FROM_SECRET
    assert args[args.index("--artifacts-destination") + 1] == "s3://mlflow-artifacts/petr4"
    assert mlflow["envFrom"] == [{"secretRef": {"name": "mlflow-s3"}}]
    assert MLFLOW not in by_kind(docs, "PersistentVolumeClaim")  # no volume at all
    assert {v["name"] for v in pod["volumes"]} == {"tmp", "readonly-config", "readonly-tmp"}
    assert {m["mountPath"] for m in mlflow["volumeMounts"]} == {"/tmp"}
    # The server waits for the migration: the init container checks the schema, never migrates.
    (wait,) = pod["initContainers"]
    assert wait["name"] == "wait-for-schema" and wait["image"] == mlflow["image"]
    assert wait["command"][:2] == ["python", "-c"] and wait["command"][3] == "600"
    program = wait["command"][2]
    assert "_get_schema_version" in program and not {"_upgrade_db", "_initialize_tables", "create_all"} & set(
        program.replace("(", " ").split()
    )
    assert {e["name"]: e for e in wait["env"]}["MLFLOW_BACKEND_STORE_URI"]["valueFrom"] == URI_FROM_SECRET
    assert wait["securityContext"] == mlflow["securityContext"]


def test_the_migration_is_a_hook_job_with_its_own_account_and_policy():
    docs = render_docs(POSTGRESQL_VALUES)
    job = by_kind(docs, "Job")[JOB]
    assert job["metadata"]["annotations"] == {
        "helm.sh/hook": HOOK, "helm.sh/hook-weight": "0",
        "helm.sh/hook-delete-policy": "before-hook-creation",
    }  # fmt: skip
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "mlflow-migration"
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["mlflow"] and container["args"] == [
        "db",
        "upgrade",
        "$(MLFLOW_BACKEND_STORE_URI)",
    ]
    assert {e["name"]: e for e in container["env"]}["MLFLOW_BACKEND_STORE_URI"][
        "valueFrom"
    ] == URI_FROM_SECRET
    assert container["image"] == mlflow_pod(docs)["containers"][0]["image"]  # the server's MLflow
    assert spec["restartPolicy"] == "Never" and spec["serviceAccountName"] == MIGRATION
    assert spec["automountServiceAccountToken"] is False and spec["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert job["spec"]["backoffLimit"] == 2 and job["spec"]["activeDeadlineSeconds"] == 1800
    # Created before it (weight -10) and gone after a success: on a first install nothing else exists.
    for kind in ("ServiceAccount", "NetworkPolicy"):
        annotations = by_kind(docs, kind)[MIGRATION]["metadata"]["annotations"]
        assert annotations == {
            "helm.sh/hook": HOOK, "helm.sh/hook-weight": "-10",
            "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
        }  # fmt: skip
    policy = by_kind(docs, "NetworkPolicy")[MIGRATION]["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "mlflow-migration"
    assert policy["ingress"] == []
    assert {"to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}], "ports": [{"protocol": "TCP", "port": 5432}]} in (
        policy["egress"]
    )
    assert {p["port"] for rule in policy["egress"] for p in rule["ports"]} == {53, 5432}
    # MLflow itself now reaches the database, the object store and DNS, nothing else.
    egress = by_kind(docs, "NetworkPolicy")[MLFLOW]["spec"]["egress"]
    assert {
        "to": [{"ipBlock": {"cidr": "10.30.0.10/32"}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    } in egress
    assert {p["port"] for rule in egress for p in rule["ports"]} == {53, 5432, 443}


def test_no_uri_in_any_rendered_text():
    """The database URI lives in the Secret only: nothing rendered names a scheme, user or password."""
    for values in (POSTGRESQL_VALUES, postgresql()):
        for path, text in render(values).items():
            assert "postgresql://" not in text and "postgres://" not in text, path
            assert "AWS_SECRET_ACCESS_KEY" not in text, path


def test_postgresql_with_the_artifacts_volume_is_one_pod():
    docs = render_docs(postgresql())
    deployment = by_kind(docs, "Deployment")[MLFLOW]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    mlflow, _ = mlflow_pod(docs)["containers"]
    assert mlflow["args"][mlflow["args"].index("--artifacts-destination") + 1] == "/data/artifacts"
    assert MLFLOW in by_kind(docs, "PersistentVolumeClaim") and JOB in by_kind(docs, "Job")
    egress = by_kind(docs, "NetworkPolicy")[MLFLOW]["spec"]["egress"]
    assert {"ports": [{"protocol": "TCP", "port": 5432}]} in egress  # no peers given: the port, anywhere


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mlflow": {"backend": {"type": "postgresql"}}}, "existingSecret is required"),
        ({"mlflow": {"replicas": 2}}, "mlflow.replicas=2 needs mlflow.backend.type=postgresql"),
        (postgresql(replicas=3), "mlflow.replicas=3 needs"),  # the volume is one pod's
        ({"mlflow": {"replicas": 2, "artifacts": {"destination": "s3://b/p"}}}, "mlflow.replicas=2 needs"),
    ],
)
def test_incoherent_stores_fail_at_template_time(values, message):
    with pytest.raises(helm_python.HelmError, match=message):
        render(values)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"mlflow": {"backend": {"type": "mysql"}}}, "type"),
        (
            {"mlflow": {"backend": {"type": "postgresql", "postgresql": {"uri": "postgresql://u:p@h/db"}}}},
            "uri",
        ),
        ({"mlflow": {"artifacts": {"destination": "/somewhere/else"}}}, "destination"),
        ({"mlflow": {"replicas": 0}}, "replicas"),
        ({"mlflow": {"readOnlyGuard": {"clientHeaderTimeoutSeconds": 0}}}, "clientHeaderTimeoutSeconds"),
        ({"mlflow": {"readOnlyGuard": {"maxConnection": 5}}}, "maxConnection"),
        ({"images": {"readOnlyGuard": {"tag": ""}}}, "tag"),
    ],
)
def test_schema_rejects(values, where):
    """Among them: a URI in values is not a setting (the Secret holds it)."""
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(merged(TEST_DEFAULTS, POSTGRESQL_VALUES))
        with pytest.raises(helm_python.HelmValuesError, match=where):
            chart.validate_schema(merged(TEST_DEFAULTS, values))


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_lint_strict(kube):
    report = helm_python.lint(
        CHART, merged(TEST_DEFAULTS, POSTGRESQL_VALUES), strict=True, namespace="petr4-forecaster",
        kube_version=f"v{kube}.0",
    )  # fmt: skip
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert not serious and not report["errors"], report


def test_the_documented_postgresql_values_render():
    """docs/deploy.md's "MLflow on PostgreSQL" values block is valid and renders what it says."""
    (values,) = [
        b for b in yaml_blocks((REPO / "docs" / "deploy.md").read_text())
        if isinstance(b, dict) and "backend" in b.get("mlflow", {})
    ]  # fmt: skip
    docs = render_docs(values)
    assert by_kind(docs, "Deployment")[MLFLOW]["spec"]["replicas"] == values["mlflow"]["replicas"]
    assert JOB in by_kind(docs, "Job") and MLFLOW not in by_kind(docs, "PersistentVolumeClaim")
