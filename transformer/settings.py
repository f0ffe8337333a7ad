"""Every transformer setting, typed, in one place: env prefix FORECASTER_TRANSFORMER_, CLI mirrors it.

kserve's own flags (--model_name, --http_port, --predictor_host, ...) come from kserve's parser; the
guard's, the fast path's and logging's are serving.cli's, shared with the predictor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt, SecretStr, model_validator

from bundle.conventions import settings_config
from marketdata.cache import CachePolicy
from serving.cli import ServingSettings


class TransformerSettings(ServingSettings):
    model_config = settings_config("transformer", "TRANSFORMER", extra="ignore")

    ticker: str = Field("PETR4.SA", description="the ticker this model forecasts (Yahoo's symbol)")
    source: Literal["yfinance", "csv", "sample"] = Field(
        "yfinance", description="where closes come from: Yahoo, a CSV file, or the packaged AAPL sample"
    )
    csv: Path | None = Field(None, description="the CSV file when --source csv")
    calendar: str = Field(
        "BVMF", description="exchange calendar (exchange_calendars name): BVMF is B3; XNYS for the sample"
    )
    settle_minutes: float = Field(
        30.0, ge=0, description="minutes after a session's close before the source is expected to have it"
    )
    history_days: PositiveInt = Field(400, description="calendar days of history fetched from Yahoo")
    fetch_timeout_s: float = Field(10.0, gt=0, description="timeout of one Yahoo request")
    fetch_retries: PositiveInt = Field(3, description="attempts per refresh")
    fetch_backoff_s: float = Field(0.5, ge=0, description="first wait between attempts (doubles each time)")
    refetch_interval_s: float = Field(
        300.0, ge=0, description="least time between refreshes of a lagging or failing source"
    )
    max_age_s: float = Field(
        4 * 86400.0,
        gt=0,
        description="refuse (503) when the data has lacked a settled session (per --calendar) for longer "
        "than this, whatever the source answers; under it, answers are marked stale with their age",
    )
    metadata_ttl_s: float = Field(
        30.0, ge=0, description="how long the predictor's window (its model metadata) is reused"
    )
    max_body_bytes: PositiveInt = Field(65_536, description="request body limit (413 above)")
    predictor_token: SecretStr | None = Field(
        None, description="bearer token sent to the predictor (default: api_token)"
    )

    @model_validator(mode="after")
    def _csv_named(self) -> TransformerSettings:
        if self.source == "csv" and self.csv is None:
            raise ValueError("--source csv needs --csv PATH")
        return self

    @property
    def policy(self) -> CachePolicy:
        return CachePolicy(
            retries=self.fetch_retries, backoff_s=self.fetch_backoff_s,
            refetch_interval_s=self.refetch_interval_s, max_age_s=self.max_age_s,
        )  # fmt: skip

    @property
    def upstream_token(self) -> str | None:
        token = self.predictor_token or self.api_token
        return token.get_secret_value() if token else None
