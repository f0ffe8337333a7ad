"""Every rollout setting, typed: env prefix FORECASTER_ROLLOUT_, CLI flags mirror it (the writer's
Job and pod, read from the environment by rollout/history.py, are FORECASTER_WORKLOAD_*)."""

from __future__ import annotations

from pydantic import Field, PositiveInt
from pydantic_settings import BaseSettings

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
    operator: str | None = Field(
        None,
        description="rollback/promote: who moves the alias, for the champion history (default: "
        "MLFLOW_TRACKING_USERNAME, else the login name)",
    )
    reason: str | None = Field(None, description="rollback/promote: why, for the champion history")


class HistorySettings(BaseSettings):
    """`python -m rollout history`: read-only, needs no Kubernetes access."""

    model_config = {**settings_config("rollout history", "ROLLOUT"), "cli_shortcuts": {"json-output": "json"}}

    model: str = Field(..., description="registered model name")
    alias: str = Field("champion", description="the alias whose moves are listed")
    tracking_uri: str = Field(..., description="MLflow tracking server (http://...); only read")
    limit: PositiveInt | None = Field(None, description="list only the newest N moves")
    json_output: bool = Field(False, description="one JSON document instead of text (also --json)")
    prometheus: str | None = Field(
        None, description="Prometheus base URL: add each champion's mean realized MAE and naive ratio"
    )
    prometheus_matchers: str = Field(
        "", description='extra label matchers for the monitor\'s series, e.g. namespace="petr4-forecaster"'
    )
    timeout_s: float = Field(10.0, gt=0, description="timeout of each Prometheus query (seconds)")
