"""Alert rules and dashboard: the rendered PrometheusRule's spec.groups pass `promtool check rules`
and the unit tests of rules_test.yaml (each alert firing and not firing); every runbook_url has a
section in docs/runbook.md; the rules and the dashboard only use metrics the code really defines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from retrainer.settings import RETRAIN_LABEL
from tests.deploy.conftest import CHART, HERE, NAMESPACE, REPO, RUNBOOK, kustomize_docs, render_docs

# The rules files (each the one source of a PrometheusRule) and their promtool unit tests.
RULE_FILES = ("rules.yaml", "rules-marketdata.yaml")
RULE_TESTS = ("rules_test.yaml", "rules_marketdata_test.yaml")


def canonical_groups() -> list[dict]:
    return [g for f in RULE_FILES for g in yaml.safe_load((CHART / "files" / f).read_text())["groups"]]


def rule_alerts() -> dict[str, dict]:
    """Every alert of the rules files (the one source), by name: tests derive their sets from it."""
    return {r["alert"]: r for g in canonical_groups() for r in g["rules"] if "alert" in r}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: run scripts/system-deps.sh (Debian's prometheus package)"
    return path


def groups(docs) -> list[dict]:
    """The groups of every PrometheusRule, in the rules files' order (names sort the same way)."""
    rules = sorted((d for d in docs if d["kind"] == "PrometheusRule"), key=lambda d: d["metadata"]["name"])
    return [g for rule in rules for g in rule["spec"]["groups"]]


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory):
    """spec.groups of the chart's PrometheusRule as a plain rules file, beside the unit tests."""
    root = tmp_path_factory.mktemp("rules")
    # The rule logic as written (the unit tests' series use namespace "ns"); the rendered rule is
    # that file localized (test_rules_are_the_chart_file) and checked by promtool too.
    for name in RULE_FILES:
        shutil.copy(CHART / "files" / name, root / name)
    (root / "rendered.yaml").write_text(yaml.safe_dump({"groups": groups(render_docs())}, sort_keys=False))
    for name in RULE_TESTS:
        shutil.copy(HERE / name, root / name)
    return root


def localized(text: str, namespace: str, runbook: str) -> list[dict]:
    """files/rules.yaml as the chart renders it: absolute runbook URLs, absence checks scoped."""
    text = text.replace("docs/runbook.md", runbook)
    for metric in ("forecaster_model_ready", "forecaster_monitor_last_success_timestamp_seconds"):
        text = text.replace(f"absent({metric})", f'absent({metric}{{namespace="{namespace}"}})')
    text = text.replace(
        "count(forecaster_model_ready)", f'count(forecaster_model_ready{{namespace="{namespace}"}})'
    )
    return yaml.safe_load(text)["groups"]


def test_rules_are_the_chart_file():
    texts = [(CHART / "files" / name).read_text() for name in RULE_FILES]
    expected = [g for text in texts for g in localized(text, NAMESPACE, RUNBOOK)]
    assert groups(render_docs()) == expected
    assert groups(kustomize_docs("standard")) == expected
    exprs = [r["expr"] for g in groups(render_docs()) for r in g["rules"]]
    absent = [a for e in exprs for a in re.findall(r"absent\(([^)]*)\)", e)]
    assert absent and all(a.endswith(f'{{namespace="{NAMESPACE}"}}') for a in absent), absent
    alerts = [r for g in groups(render_docs()) for r in g["rules"] if "alert" in r]
    assert all(r.get("for") for r in alerts), [r["alert"] for r in alerts if not r.get("for")]
    assert all(r["annotations"]["runbook_url"].startswith(RUNBOOK + "#") for r in alerts)


def test_runbook_base_url_is_required_and_absolute():
    import helm_python

    from tests.deploy.conftest import render

    with pytest.raises(helm_python.HelmError, match=r"monitoring\.runbookBaseUrl is required"):
        render({"monitoring": {"runbookBaseUrl": ""}})
    with pytest.raises(helm_python.HelmError, match="runbookBaseUrl"):
        render({"monitoring": {"runbookBaseUrl": "docs/runbook.md"}})
    # No PrometheusRule, no URL needed.
    assert render({"monitoring": {"runbookBaseUrl": "", "prometheusRule": {"enabled": False}}})


def test_promtool_check_rules(rules_dir):
    result = subprocess.run(
        [
            promtool(),
            "check",
            "rules",
            *(str(rules_dir / n) for n in RULE_FILES),
            str(rules_dir / "rendered.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("tests", RULE_TESTS)
def test_promtool_unit_tests(rules_dir, tests):
    result = subprocess.run(
        [promtool(), "test", "rules", tests],
        cwd=rules_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not():
    cases = [c for name in RULE_TESTS for c in yaml.safe_load((HERE / name).read_text())["tests"]]
    fired, quiet = set(), set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = set(rule_alerts())
    assert len(alerts) >= 8, alerts  # the predictor's four and the monitor's four at least
    assert alerts - fired == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested quiet"


def test_every_alert_has_a_severity():
    for name, rule in rule_alerts().items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name


def test_retraining_alerts_carry_the_one_key_and_the_model():
    """The receiver retrains on `action: retrain` + the `model` label (its CRONJOBS keys)."""
    key, value = RETRAIN_LABEL
    retraining = {n: r for n, r in rule_alerts().items() if r["labels"].get(key) == value}
    assert "ForecasterRealizedMAEHigh" in retraining
    for name, rule in retraining.items():
        assert "model" in rule["expr"].split("by (", 1)[1].split(")", 1)[0], name
    assert "> 1.10" in retraining["ForecasterRealizedMAEHigh"]["expr"]


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_runbook_has_a_section_per_alert():
    runbook = (REPO / "docs" / "runbook.md").read_text()
    anchors = {anchor(line.lstrip("#")) for line in runbook.splitlines() if line.startswith("#")}
    for group in groups(render_docs()):
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            annotations = rule["annotations"]
            assert {"summary", "description", "runbook_url"} <= annotations.keys(), rule["alert"]
            path, _, fragment = annotations["runbook_url"].partition("#")
            assert path == RUNBOOK and fragment == rule["alert"].lower(), rule["alert"]
            assert fragment in anchors, f"docs/runbook.md has no section for {rule['alert']}"


def defined_metrics() -> set[str]:
    """Metric names the project's code defines (prometheus_client adds _total/_bucket/_sum/_count)."""
    names = set()
    for path in REPO.glob("*/*.py"):
        if (
            path.parts[len(REPO.parts)] in {"tests", "scripts", "bench"}
            or ".venv" in path.parts[len(REPO.parts)]
        ):
            continue
        names |= set(re.findall(r"[\"'](forecaster_[a-z0-9_]+)[\"']", path.read_text()))
    return names


def used_metrics(promql: str) -> set[str]:
    names = set(re.findall(r"\b(forecaster_[a-z0-9_]+)", re.sub(r'"[^"]*"', '""', promql)))
    return {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in names} | {
        n for n in names if n.endswith("_total")
    }


def test_rules_and_dashboard_use_real_metrics():
    defined = defined_metrics()
    bases = {re.sub(r"_total$", "", n) for n in defined} | defined
    assert {
        "forecaster_request_duration_seconds",
        "forecaster_requests_total",
        "forecaster_model_ready",
        "forecaster_model_info",
        "forecaster_reloads_total",
    } <= defined
    exprs = [r["expr"] for g in groups(render_docs()) for r in g["rules"]]
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    panels = dashboard["panels"]
    exprs += [t["expr"] for p in panels for t in p.get("targets", [])]
    exprs += [
        v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)
    ]
    unknown = {m for e in exprs for m in used_metrics(e)} - bases
    assert not unknown, f"metrics not defined by the code: {unknown}"


def test_dashboard_configmap():
    (config,) = [
        d for d in render_docs() if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")
    ]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    (key,) = config["data"]
    assert key == f"{NAMESPACE}-petr4-forecaster.json"
    dashboard = json.loads(config["data"][key])
    source = json.loads((CHART / "files" / "dashboard.json").read_text())
    assert dashboard["uid"] != source["uid"] and len(dashboard["uid"]) <= 40
    assert dashboard["title"].startswith(f"{NAMESPACE}-petr4-forecaster predictors")
    assert {**dashboard, "uid": source["uid"], "title": source["title"]} == source
    # Another release (name or namespace) gets another uid and key: no overwriting in Grafana.
    other = next(
        d
        for d in render_docs({"fullnameOverride": "other"})
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")
    )
    (other_key,) = other["data"]
    assert other_key != key and json.loads(other["data"][other_key])["uid"] != dashboard["uid"]
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("request rate", "error ratio", "p50 / p99", "model version", "reloads", "ready"):
        assert topic in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


MONITOR_METRICS = {
    "forecaster_realized_mae",
    "forecaster_realized_naive_mae",
    "forecaster_realized_mae_ratio",
    "forecaster_realized_interval_coverage",
    "forecaster_realized_sessions",
    "forecaster_data_latest_close_timestamp_seconds",
    "forecaster_monitor_last_success_timestamp_seconds",
    "forecaster_monitor_runs_total",
}


def test_dashboard_realized_accuracy_panels():
    """The monitor's panels: MAE vs naive, the ratio with the alert's 1.10, coverage with the nominal
    0.8 / 0.95, freshness, runs by result, last success; only the monitor's metrics, filtered by
    the dashboard's namespace and model (= InferenceService) variables."""
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    panels = {p["title"].lower(): p for p in dashboard["panels"]}

    def panel(words: str) -> dict:
        (found,) = [p for title, p in panels.items() if words in title]
        return found

    def exprs(p: dict) -> str:
        return " ; ".join(t["expr"] for t in p["targets"])

    def lines(p: dict) -> set[float]:
        steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
        return {s["value"] for s in steps if s["value"] is not None}

    mae = panel("realized mae vs naive")
    assert "forecaster_realized_mae{" in exprs(mae) and "forecaster_realized_naive_mae{" in exprs(mae)
    ratio = panel("mae / naive")
    assert "forecaster_realized_mae_ratio{" in exprs(ratio) and lines(ratio) == {1.1}
    coverage = panel("coverage")
    assert "by (model, coverage)" in exprs(coverage) and lines(coverage) == {0.8, 0.95}
    freshness = panel("freshness")
    assert exprs(freshness).startswith(
        "time() - max by (model) (forecaster_data_latest_close_timestamp_seconds{"
    )
    runs = panel("monitor runs")
    assert "by (model, result)" in exprs(runs) and "forecaster_monitor_runs_total{" in exprs(runs)
    assert "forecaster_monitor_last_success_timestamp_seconds{" in exprs(panel("last success"))
    monitor_panels = [
        p for p in dashboard["panels"] if p.get("targets") and any(m in exprs(p) for m in MONITOR_METRICS)
    ]
    assert len(monitor_panels) == 6
    for p in monitor_panels:
        for target in p["targets"]:
            assert set(used_metrics(target["expr"])) <= MONITOR_METRICS | {"forecaster_monitor_runs"}, p[
                "title"
            ]
            assert 'namespace=~"$namespace", model=~"$inferenceservice"' in target["expr"], p["title"]
