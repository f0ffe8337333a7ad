"""The one module that touches kserve's internals: version check, command line, assembly pieces."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from kserve.errors import ModelNotFound
from kserve.protocol.rest.v2_datamodels import InferenceResponse

from predictor import kserve_seam
from predictor.kserve_seam import NotReadyError
from predictor.settings import PredictorSettings
from tests.unit.predictor.conftest import make_model


def test_another_kserve_version_refuses_to_start_naming_both_versions():
    kserve_seam.check_version(kserve_seam.KSERVE_VERSION)  # the installed one passes
    with pytest.raises(kserve_seam.KServeVersionError, match=r"kserve 0\.22\.0 is installed.*0\.21\.0"):
        kserve_seam.check_version("0.22.0")


def test_the_installed_kserve_is_the_one_the_seam_was_written_for():
    kserve_seam.check_version()


def test_kserve_flags_keep_their_names_and_ours_follow_the_project_convention(monkeypatch):
    monkeypatch.setenv("FORECASTER_PREDICTOR_MAX_BATCH", "7")
    args, settings = kserve_seam.parse(
        ["--model_name", "m", "--http_port", "9000", "--model-source", "/b", "--no-quiet", "--api-token", "t"]
    )
    assert args.model_name == "m" and args.http_port == 9000
    assert settings.model_source == "/b" and settings.quiet is False and settings.max_batch == 7
    assert settings.api_token.get_secret_value() == "t"


def test_every_flag_of_ours_has_help_text():
    help_text = kserve_seam.build_parser().format_help()
    cli = kserve_seam.CliSettingsSource(
        PredictorSettings, root_parser=kserve_seam.build_parser(), **kserve_seam.CLI_CONVENTION
    )
    ours = cli.root_parser.format_help()
    assert "--model_name" in help_text
    for name, field in PredictorSettings.model_fields.items():
        assert field.description, f"{name} has no help text"
        assert f"--{name.replace('_', '-')}" in ours


def test_quiet_logging_silences_per_request_lines(tmp_path):
    config = json.loads(Path(kserve_seam.quiet_log_config(str(tmp_path))).read_text())
    assert config["loggers"]["uvicorn.access"]["level"] == "WARNING"
    assert config["loggers"]["kserve.trace"]["level"] == "WARNING"


def test_the_server_refuses_to_assemble_without_a_forecast_model(tiny_dir):
    with pytest.raises(RuntimeError, match="no forecast model"):
        kserve_seam.served_settings([object()])
    model = make_model(tiny_dir, max_batch=3)
    assert kserve_seam.served_settings([object(), model]).max_batch == 3


def test_a_rejected_request_is_one_log_line_without_traceback(caplog):
    import asyncio

    from predictor.codecs import Rejected

    with caplog.at_level("INFO", logger="predictor.rejected"):
        response = asyncio.run(kserve_seam.rejected_request(None, Rejected("window", "window length is 3")))
    assert response.status_code == 400 and json.loads(response.body) == {"error": "window length is 3"}
    (record,) = caplog.records
    assert record.getMessage() == "rejected (400): window length is 3" and record.exc_info is None


@pytest.mark.parametrize("exc,status", [(ModelNotFound("nope"), 404), (NotReadyError("m"), 503)])
def test_unknown_and_not_ready_models_keep_kserves_status_without_the_traceback(caplog, exc, status):
    import asyncio

    with caplog.at_level("INFO", logger="predictor.rejected"):
        response = asyncio.run(kserve_seam.rejected_request(None, exc))
    assert response.status_code == status and json.loads(response.body) == {"error": str(exc)}
    (record,) = caplog.records
    assert record.exc_info is None


def test_quiet_logging_silences_rejections(tmp_path):
    config = json.loads(Path(kserve_seam.quiet_log_config(str(tmp_path))).read_text())
    assert config["loggers"]["predictor.rejected"]["level"] == "WARNING"


@pytest.mark.parametrize(
    "response",
    [
        {
            "id": "r1", "model_name": "m", "model_version": "3",
            "outputs": [
                {"name": "forecast", "shape": [2], "datatype": "FP64", "data": [31.4, 1e-300]},
                {"name": "lower_80", "shape": [2], "datatype": "FP32", "data": [30.5, 2.0]},
            ],
        },
        {
            "id": "r2", "model_name": "m", "model_version": None, "parameters": {"p": 1},
            "outputs": [
                {"name": "forecast", "shape": [1], "datatype": "FP64", "parameters": {"q": "x"},
                 "data": [1.5]},
            ],
        },
    ],
)  # fmt: skip
def test_the_v2_answer_is_the_bytes_kserves_response_model_writes_without_nulls(response):
    """The lean answer must stay what kserve's InferenceResponse (validated, dumped without nulls)
    wrote: same fields, same order, same numbers."""
    model = InferenceResponse.model_validate(response)
    expected = orjson.dumps(model.model_dump(mode="json", exclude_none=True))
    assert kserve_seam.json_answer(response) == expected
    assert b"null" not in kserve_seam.json_answer(response)
