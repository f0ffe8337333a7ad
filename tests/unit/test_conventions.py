"""One CLI convention for every package: kebab-case flags, --flag/--no-flag, help on every flag."""

from __future__ import annotations

import pytest

from bundle.conventions import CLI_CONVENTION
from monitor.settings import MonitorSettings
from predictor.settings import PredictorSettings
from retrainer.settings import RetrainerSettings
from rollout.settings import HistorySettings, RolloutSettings
from training.settings import TrainSettings
from transformer.settings import TransformerSettings

SETTINGS = [TrainSettings, PredictorSettings, MonitorSettings, RetrainerSettings, TransformerSettings,
            RolloutSettings, HistorySettings]  # fmt: skip


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


def test_one_model_name_rule_for_every_package():
    from bundle.conventions import model_name_for

    assert model_name_for("PETR4.SA") == "petr4-sa-forecaster"
    assert model_name_for("^BVSP") == "bvsp-forecaster" and model_name_for("BRL=X") == "brl-x-forecaster"
    assert TrainSettings(ticker="VALE3.SA").registered_name == model_name_for("VALE3.SA")


def test_a_universe_is_its_tickers_in_order():
    from bundle.conventions import parse_universe

    assert parse_universe(" PETR4.SA,VALE3.SA ,^BVSP") == ("PETR4.SA", "VALE3.SA", "^BVSP")
    for bad in ("", "A,", "A/B", "..", "^", "A,a"):
        with pytest.raises(ValueError, match="--universe"):
            parse_universe(bad)
