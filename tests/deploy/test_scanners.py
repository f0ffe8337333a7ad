"""Security scanners over the Dockerfiles, the chart, the committed manifests and every render/build:
trivy config, checkov and hadolint report nothing (of any severity) that is not suppressed in the
repository with a written reason (.checkov.yaml, .trivyignore.yaml, and .trivyignore.rego for the
findings accepted for one named object only; hadolint needs none today)."""

from __future__ import annotations

import copy
import json
import subprocess

import yaml

from tests.deploy.conftest import CHART, DOCKERFILES, MANIFESTS, REPO, key, render_docs, tool


def run(args: list[str], timeout: int = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def trivy_findings(target, cache) -> list[str]:
    """Failed checks that neither .trivyignore.yaml (by ID) nor .trivyignore.rego (by object) accepts."""
    result = run(
        [
            tool("trivy"),
            "config",
            "--skip-check-update",
            "--cache-dir",
            str(cache),
            "--quiet",
            "--ignorefile",
            str(REPO / ".trivyignore.yaml"),
            "--ignore-policy",
            str(REPO / ".trivyignore.rego"),
            "--format",
            "json",
            # The chart refuses to render without a registry (trivy renders it with its defaults).
            *(["--helm-set", "images.registry=registry.example.org/ml"] if target == CHART else []),
            str(target),
        ]
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    scanned = [r for r in report.get("Results", []) if r.get("Class") == "config"]
    assert scanned, f"trivy scanned nothing in {target}"
    return [
        f"{m['Severity']} {m['ID']} {r['Target']}: {m['Title']} ({m.get('Message', '')})"
        for r in scanned
        for m in r.get("Misconfigurations") or []
        if m.get("Status") == "FAIL"
    ]


def test_trivy_config(scan_dir, tmp_path):
    """trivy renders the chart itself; the scan dir holds the Dockerfiles and every render/build."""
    findings = []
    for target in (scan_dir, CHART, MANIFESTS / "base"):
        findings += trivy_findings(target, tmp_path / "trivy-cache")
    assert not findings, "\n".join(findings)


def test_trivy_object_suppressions_are_scoped(tmp_path):
    """.trivyignore.rego accepts the token mount and the Job-creating Role of the retrainer, the
    token mount of the training Jobs' pin, and the monitors' token mount and ConfigMap-patching Role
    only: the same objects under another component's name are still reported."""
    docs = {key(d): d for d in render_docs()}
    deployment = copy.deepcopy(docs["Deployment", "petr4-forecaster-retrainer"])
    role = copy.deepcopy(docs["Role", "petr4-forecaster-retrainer"])
    job = copy.deepcopy(docs["Job", "petr4-forecaster-train-petr4-sa"])
    monitor = copy.deepcopy(docs["Deployment", "petr4-forecaster-monitor-petr4-sa"])
    monitor_role = copy.deepcopy(docs["Role", "petr4-forecaster-monitor"])
    for doc in (deployment, role, job):
        doc["metadata"]["name"] = "petr4-forecaster-mlflow"
    monitor["metadata"]["name"] = "petr4-forecaster-predictor"
    monitor_role["metadata"]["name"] = "petr4-forecaster-predictor"
    target = tmp_path / "scan"
    target.mkdir()
    renamed = [deployment, role, job, monitor, monitor_role]
    (target / "renamed.yaml").write_text(yaml.safe_dump_all(renamed, sort_keys=False))
    findings = trivy_findings(target, tmp_path / "trivy-cache")
    ids = {finding.split()[1] for finding in findings}
    assert {"KSV-0036", "KSV-0048", "KSV-0049"} <= ids
    assert any("Job 'petr4-forecaster-mlflow'" in f for f in findings if " KSV-0036 " in f)
    assert any("Deployment 'petr4-forecaster-predictor'" in f for f in findings if " KSV-0036 " in f)
    assert any("Role 'petr4-forecaster-predictor'" in f for f in findings if " KSV-0049 " in f)


def test_checkov(scan_dir, checkov):
    result = run(
        [
            checkov,
            "-d",
            str(scan_dir),
            "--config-file",
            str(REPO / ".checkov.yaml"),
            "--framework",
            "kubernetes",
            "dockerfile",
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ],
        cwd=scan_dir,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}, result.stderr
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)
    assert sum(r["summary"]["passed"] for r in reports) > 500, "checkov checked too little"
    failed = [
        f"{f['check_id']} {f['file_path']} {f['resource']}: {f['check_name']}"
        for r in reports
        for f in r["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert result.returncode == 0, result.stderr


def test_hadolint():
    result = run([tool("hadolint"), "--format", "json", *DOCKERFILES], cwd=REPO)
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_dockerfiles_follow_the_brief():
    """Non-root uid, BASE_IMAGE default, pinned torch first with an optional index, entrypoints."""
    serve = (REPO / "Dockerfile.serve").read_text()
    train = (REPO / "Dockerfile.train").read_text()
    for text in ((REPO / name).read_text() for name in DOCKERFILES):
        assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in text
        assert "USER 10001:10001" in text and text.count("FROM ${BASE_IMAGE}") == 2
        assert "-c constraints.txt" in text
    assert (
        '".[serve]"' in serve
        and "torch" not in serve.split("FROM ${BASE_IMAGE}", 1)[1].split("import torch")[0]
    )
    assert 'ENTRYPOINT ["python", "-m", "predictor"]' in serve
    assert 'ARG TORCH_INDEX_URL=""' in train and 'ENTRYPOINT ["python", "-m", "training"]' in train
    torch_at, rest_at = train.index("torch==2.13.0"), train.index('".[train]"')
    assert torch_at < rest_at
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :][:1] == ["*"], ".dockerignore starts from nothing and lists what enters"
