"""The transformer's command line: kserve's flags and ours, environment variables, refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from transformer.__main__ import parse, predictor_config


def test_kserve_flags_and_ours_parse_together(monkeypatch):
    monkeypatch.setenv("FORECASTER_TRANSFORMER_API_TOKEN", "t")
    args, settings = parse(["--model_name", "petr4", "--predictor_host", "petr4-predictor:80",
                            "--source", "sample", "--calendar", "XNYS", "--max-age-s", "60"])  # fmt: skip
    assert (args.model_name, args.predictor_host) == ("petr4", "petr4-predictor:80")
    assert (settings.source, settings.calendar, settings.max_age_s) == ("sample", "XNYS", 60.0)
    assert settings.upstream_token == "t"  # the predictor's token defaults to the transformer's
    assert settings.policy.max_age_s == 60.0


def test_the_predictor_is_always_called_over_v2():
    args, _ = parse(["--model_name", "m", "--predictor_host", "h:80", "--predictor_protocol", "v1"])
    config = predictor_config(args)
    assert (config.predictor_protocol, config.predictor_base_url) == ("v2", "http://h:80")


def test_a_csv_source_needs_its_file():
    with pytest.raises(ValidationError, match="--csv PATH"):
        parse(["--model_name", "m", "--source", "csv"])


def test_the_wait_on_the_predictor_is_bounded_by_default_and_configurable():
    """kserve's --predictor_request_timeout_seconds defaults to 600 s; the transformer's to 10 s."""
    args, _ = parse(["--model_name", "m", "--predictor_host", "h:80"])
    assert predictor_config(args).predictor_request_timeout_seconds == 10
    args, _ = parse(
        ["--model_name", "m", "--predictor_host", "h:80", "--predictor_request_timeout_seconds", "3"]
    )
    assert predictor_config(args).predictor_request_timeout_seconds == 3
