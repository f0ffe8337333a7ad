"""Every receiver setting, typed, in one place: env prefix FORECASTER_RETRAINER_."""

from __future__ import annotations

from pydantic import Field, PositiveInt, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class RetrainerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FORECASTER_RETRAINER_", extra="forbid")

    token: SecretStr = Field(..., description="bearer token Alertmanager must send (from a Secret)")
    namespace: str = Field(..., description="namespace of the CronJobs and Jobs")
    cronjobs: dict[str, str] = Field(
        ..., description='alert label `model` -> CronJob to run, e.g. {"petr4": "petr4-retrain"}'
    )
    alerts: tuple[str, ...] = Field(("ForecasterRealizedMAEHigh",), description="alert names that retrain")
    api_server: str = Field("https://kubernetes.default.svc", description="Kubernetes API base URL")
    sa_token_path: str = Field(f"{SA_DIR}/token", description="service account token (re-read per call)")
    ca_path: str | None = Field(f"{SA_DIR}/ca.crt", description="API server CA; None for http test servers")
    port: PositiveInt = 8080
    host: str = "0.0.0.0"
