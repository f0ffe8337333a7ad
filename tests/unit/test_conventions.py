"""One CLI convention for every package: kebab-case flags, --flag/--no-flag, help on every flag."""

from __future__ import annotations

import pytest

from bundle.conventions import CLI_CONVENTION
from monitor.settings import MonitorSettings
from predictor.settings import PredictorSettings
from retrainer.settings import RetrainerSettings
from training.settings import TrainSettings
from transformer.settings import TransformerSettings

SETTINGS = [TrainSettings, PredictorSettings, MonitorSettings, RetrainerSettings, TransformerSettings]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: s.__name__)
def test_every_setting_has_help_text_and_an_env_prefix(settings):
    assert settings.model_config["env_prefix"].startswith("FORECASTER_")
    missing = [name for name, field in settings.model_fields.items() if not field.description]
    assert not missing, f"{settings.__name__}: no help text for {missing}"


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: s.__name__)
def test_every_package_follows_the_one_convention(settings):
    """CliApp (training, monitor, retrainer) and the predictor's parser beside kserve's read it."""
    for key, value in CLI_CONVENTION.items():
        assert settings.model_config.get(key) == value, (settings.__name__, key)
