"""Every rollout setting, typed: env prefix FORECASTER_ROLLOUT_, CLI flags mirror it."""

from __future__ import annotations

from pydantic import Field, PositiveInt

from bundle.conventions import settings_config
from retrainer.settings import KubeAccess


class RolloutSettings(KubeAccess):
    model_config = settings_config("rollout", "ROLLOUT")

    model: str = Field(..., description="registered model name (the InferenceService's --model_name)")
    alias: str | None = Field(
        None, description="pin the stable predictor to the version this alias points at (e.g. champion)"
    )
    version: PositiveInt | None = Field(
        None, description="pin the stable predictor to this version (rollback: move --alias here first)"
    )
    canary_alias: str | None = Field(
        None, description="pin the canary predictor to the version this alias points at (e.g. challenger)"
    )
    canary_version: PositiveInt | None = Field(None, description="pin the canary predictor to this version")
    inference_service: str | None = Field(None, description="InferenceService name (default: --model)")
    traffic_percent: int = Field(
        10, ge=1, le=99, description="Knative mode: canaryTrafficPercent of a new canary revision"
    )
    tracking_uri: str = Field(..., description="MLflow tracking server (http://...)")
    attempts: PositiveInt = Field(
        4, description="tries of an API call that failed transiently (5xx, network); of a pin met by a 409"
    )
    retry_delay_s: float = Field(2.0, ge=0, description="first pause between tries (doubles each time)")
