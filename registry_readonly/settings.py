"""Every read-only proxy setting, typed: env prefix FORECASTER_READONLY_, CLI flags mirror it."""

from __future__ import annotations

from pydantic import Field, PositiveFloat
from pydantic_settings import BaseSettings

from bundle.conventions import settings_config


class ReadOnlySettings(BaseSettings):
    model_config = settings_config("registry_readonly", "READONLY")

    upstream: str = Field(
        "http://127.0.0.1:5000", pattern=r"^http://[^/?#]+/?$",
        description="MLflow server to forward reads to (http://host:port, in the same pod)",
    )  # fmt: skip
    host: str = Field("0.0.0.0", description="address to listen on")
    port: int = Field(5001, ge=1, le=65535, description="port to listen on (the read-only port)")
    connect_timeout_s: PositiveFloat = Field(5.0, description="seconds to connect to the upstream")
    read_timeout_s: PositiveFloat = Field(
        120.0, description="seconds the upstream may stay silent mid-answer (large artifacts stream)"
    )
    client_timeout_s: PositiveFloat = Field(
        30.0, description="seconds a client may stay silent (sending its request) before it is closed"
    )
    log_level: str = Field("INFO", description="logging level")
