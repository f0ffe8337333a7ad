"""The bootstrap Job's two flags (helm hook on every install and upgrade): `--skip-if-champion`
leaves a model that has a champion alone (idempotent), and `--require-promotion` turns a refused
first model into a failed Job (exit 3, one line saying why) instead of a silent success."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from tests.conftest import fast_settings
from tests.tiny_bundle import windows, write_tiny_bundle
from training import registry
from training.__main__ import EXIT_REFUSED, run

pytestmark = pytest.mark.slow


def test_refused_first_model_fails_the_job(tmp_path, capsys):
    # A negative margin demands beating naive by 50%: no daily-close model does (as in test_pipeline).
    settings = fast_settings(tmp_path, model_name="strict", max_epochs=1, require_promotion=True)
    settings = settings.model_copy(update={"naive_margin": -0.5})
    assert run(settings) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "error: the gate refused the new version of strict (rejected:" in err and "was not moved" in err
    assert registry.alias_version(settings) is None
    # The same refusal without the flag (the CronJob's retraining): a normal, successful run.
    assert run(settings.model_copy(update={"require_promotion": False})) == 0


def test_skip_if_champion_is_idempotent(tmp_path, capsys):
    settings = fast_settings(tmp_path, model_name="held", skip_if_champion=True, require_promotion=True)
    client, experiment = registry.connect(settings)
    import mlflow

    with mlflow.start_run(experiment_id=experiment) as active:
        bundle = write_tiny_bundle(tmp_path / "bundle")
        model_id = registry.log_bundle_model(bundle, "held", windows(1)[0], {})
    version = registry.register(client, "held", model_id, active.info.run_id, {})
    client.set_registered_model_alias("held", "champion", version)
    assert run(settings) == 0
    assert "held@champion is version 1: nothing to bootstrap" in capsys.readouterr().out
    versions = MlflowClient(settings.tracking_uri).search_model_versions("name='held'")
    assert [str(v.version) for v in versions] == ["1"], "nothing trained, nothing registered"
