"""`python -m predictor`'s command line: kserve's flags keep their names, ours follow the convention."""

from __future__ import annotations

from pydantic_settings import CliSettingsSource

from bundle.conventions import CLI_CONVENTION
from predictor import __main__ as cli
from predictor.settings import PredictorSettings


def test_kserve_flags_keep_their_names_and_ours_follow_the_project_convention(monkeypatch):
    monkeypatch.setenv("FORECASTER_PREDICTOR_MAX_BATCH", "7")
    args, settings = cli.parse(
        ["--model_name", "m", "--http_port", "9000", "--model-source", "/b", "--no-quiet", "--api-token", "t"]
    )
    assert args.model_name == "m" and args.http_port == 9000
    assert settings.model_source == "/b" and settings.quiet is False and settings.max_batch == 7
    assert settings.api_token.get_secret_value() == "t"


def test_every_flag_of_ours_has_help_text():
    help_text = cli.build_parser().format_help()
    source = CliSettingsSource(PredictorSettings, root_parser=cli.build_parser(), **CLI_CONVENTION)
    ours = source.root_parser.format_help()
    assert "--model_name" in help_text
    for name, field in PredictorSettings.model_fields.items():
        assert field.description, f"{name} has no help text"
        assert f"--{name.replace('_', '-')}" in ours
