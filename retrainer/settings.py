"""Every receiver setting, typed, in one place: env prefix FORECASTER_RETRAINER_, CLI flags mirror it.

Which alerts retrain is not a setting: an alert retrains when its rule carries the label
`action: retrain` (RETRAIN_LABEL), the one key the rules, the Alertmanager route and this receiver share.
"""

from __future__ import annotations

from pydantic import Field, PositiveInt, SecretStr
from pydantic_settings import BaseSettings

from bundle.conventions import settings_config

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
RETRAIN_LABEL = ("action", "retrain")


class KubeAccess(BaseSettings):
    """Where the Kubernetes API server is and how to authenticate (the receiver, `python -m rollout`)."""

    namespace: str = Field(..., description="namespace of the objects read and written")
    api_server: str = Field("https://kubernetes.default.svc", description="Kubernetes API base URL")
    sa_token_path: str | None = Field(
        f"{SA_DIR}/token", description="service account token, re-read on a 401; empty behind `kubectl proxy`"
    )
    ca_path: str | None = Field(f"{SA_DIR}/ca.crt", description="API server CA; None for http servers")


class RetrainerSettings(KubeAccess):
    model_config = settings_config("retrainer", "RETRAINER")

    token: SecretStr = Field(..., description="bearer token Alertmanager must send (from a Secret)")
    cronjobs: dict[str, str] = Field(
        ..., description='alert label `model` -> CronJob to run, e.g. {"petr4": "petr4-retrain"}'
    )
    port: PositiveInt = Field(8080, description="port of the webhook")
    host: str = Field("0.0.0.0", description="address to bind")
