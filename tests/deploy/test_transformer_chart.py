"""The transformer in the chart: one per InferenceService (on by default, one flag off), the serving
image with the predictor's security context, and a NetworkPolicy allowing exactly its paths:
clients in, the predictors, the data source and DNS out."""

from __future__ import annotations

import helm_python
import pytest

from tests.deploy.conftest import CHART, MODES, multi_values, render, render_docs


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def args_of(container: dict) -> dict[str, str]:
    args = container["args"]
    return dict(zip(args[::2], args[1::2], strict=True))


@pytest.mark.parametrize("mode", MODES)
def test_every_inferenceservice_has_a_transformer_like_its_predictor(mode):
    docs = render_docs(multi_values(mode))
    isvcs = by_kind(docs, "InferenceService")
    assert len(isvcs) >= 2
    for name, isvc in isvcs.items():
        predictor, transformer = isvc["spec"]["predictor"], isvc["spec"]["transformer"]
        (container,) = transformer["containers"]
        assert container["command"] == ["python", "-m", "transformer"]
        model = predictor["model"]  # the predictor's container (KServe merges it over the runtime's)
        assert container["image"] == model["image"]  # the serving image: no torch
        assert container["securityContext"] == model["securityContext"]
        assert transformer.get("securityContext") == predictor.get("securityContext")
        args = args_of(container)
        assert args["--model_name"] == name and args["--predictor_protocol"] == "v2"
        assert (args["--source"], args["--calendar"]) == ("yfinance", "BVMF")
        assert args["--predictor_request_timeout_seconds"] == "10"  # kserve's default is 600 s
        assert "--predictor_host" not in args  # KServe sets it
        assert transformer["labels"]["app.kubernetes.io/component"] == "transformer"
        assert predictor["labels"]["app.kubernetes.io/component"] == "predictor"
        assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_one_flag_turns_it_off():
    docs = render_docs({"transformer": {"enabled": False}})
    (isvc,) = by_kind(docs, "InferenceService").values()
    assert "transformer" not in isvc["spec"]
    assert "petr4-forecaster-transformer" not in by_kind(docs, "NetworkPolicy")
    assert list(by_kind(docs, "PrometheusRule")) == ["petr4-forecaster-alerts"]


def test_the_token_is_the_predictor_s_by_reference():
    docs = render_docs({"predictor": {"apiToken": {"existingSecret": "forecast-token"}}})
    (isvc,) = by_kind(docs, "InferenceService").values()
    env = {e["name"]: e for e in isvc["spec"]["transformer"]["containers"][0]["env"]}
    ref = env["FORECASTER_TRANSFORMER_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    predictor = {e["name"]: e for e in isvc["spec"]["predictor"]["model"]["env"]}
    assert ref == {"name": "forecast-token", "key": "token"}
    assert ref == predictor["FORECASTER_PREDICTOR_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert "FORECASTER_TRANSFORMER_API_TOKEN" not in {
        e["name"] for e in by_kind(render_docs(), "InferenceService")["petr4-sa-forecaster"]["spec"][
            "transformer"]["containers"][0]["env"]
    }  # fmt: skip


def peers(rule: dict) -> list:
    return [
        (
            tuple(sorted(p.get("podSelector", {}).get("matchLabels", {}).items())),
            p.get("ipBlock", {}).get("cidr"),
        )
        for p in rule["to"]
    ]


@pytest.mark.parametrize(("source", "internet"), [("yfinance", True), ("sample", False)])
def test_network_policy_allows_exactly_the_transformer_s_paths(source, internet):
    docs = render_docs({"transformer": {"source": source}})
    policies = by_kind(docs, "NetworkPolicy")
    policy = policies["petr4-forecaster-transformer"]["spec"]
    selector = policy["podSelector"]["matchLabels"]
    (isvc,) = by_kind(docs, "InferenceService").values()
    assert selector.items() <= isvc["spec"]["transformer"]["labels"].items()
    assert not selector.items() <= isvc["spec"]["predictor"]["labels"].items()
    predictor_selector = policies["petr4-forecaster-predictor"]["spec"]["podSelector"]["matchLabels"]
    assert not predictor_selector.items() <= isvc["spec"]["transformer"]["labels"].items()
    ports = [p["port"] for rule in policy["ingress"] for p in rule["ports"]]
    assert ports == [8080, 8080]  # the predictor's clients, Prometheus
    # ... and the predictor's policy admits the transformers
    ingress = policies["petr4-forecaster-predictor"]["spec"]["ingress"]
    admitted = [
        r for r in ingress if any(p.get("podSelector", {}).get("matchLabels") == selector for p in r["from"])
    ]
    assert [p["port"] for r in admitted for p in r["ports"]] == [8080]
    egress = policy["egress"]
    to_predictor, *rest = egress
    assert peers(to_predictor) == [(tuple(sorted(predictor_selector.items())), None)]
    assert [p["port"] for p in to_predictor["ports"]] == [8080]
    dns = rest[-1]
    assert {p["port"] for p in dns["ports"]} == {53}
    if internet:
        (yahoo,) = rest[:-1]
        assert peers(yahoo) == [((), "0.0.0.0/0")] and [p["port"] for p in yahoo["ports"]] == [443]
    else:
        assert rest == [dns]


def test_schema_rejects_an_unknown_source_and_key():
    with helm_python.Chart.load(CHART) as chart:
        with pytest.raises(helm_python.HelmValuesError, match="source"):
            chart.validate_schema({"transformer": {"source": "ftp"}})
        with pytest.raises(helm_python.HelmValuesError, match="maxAge"):
            chart.validate_schema({"transformer": {"maxAge": 5}})
        with pytest.raises(helm_python.HelmValuesError, match="predictorTimeoutSeconds"):
            chart.validate_schema({"transformer": {"predictorTimeoutSeconds": 0}})
    with pytest.raises(helm_python.HelmError):
        render({"transformer": {"enabled": "yes"}})
