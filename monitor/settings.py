"""Every monitor setting, typed, in one place: env prefix FORECASTER_MONITOR_, CLI flags mirror it."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict


class MonitorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FORECASTER_MONITOR_", cli_prog_name="python -m monitor", cli_kebab_case=True,
        cli_implicit_flags=True, extra="forbid",
    )  # fmt: skip

    model_source: str = Field(..., description="bundle directory or models:/<name>@<alias>")
    tracking_uri: str | None = Field(None, description="MLflow tracking server for models:/ sources")
    model_name: str = Field(..., description="the served model's name (the `model` label)")
    variant: Literal["fp32", "int8"] = "fp32"
    source: Literal["yfinance", "csv"] = Field("yfinance", description="published closes: yfinance or a CSV")
    ticker: str = Field("PETR4.SA", description="Yahoo ticker (yfinance source)")
    csv: Path | None = Field(None, description="CSV of published closes (csv source), re-read every run")
    start: date = Field(date(2020, 1, 1), description="first date fetched (only the tail is used)")
    end: date | None = None
    fetch_retries: PositiveInt = 3
    fetch_backoff_s: float = Field(5.0, ge=0)
    sessions: PositiveInt = Field(20, description="realized MAE over the last N sessions")
    interval_sessions: PositiveInt = Field(
        120, description="realized coverage and interval score over the last N sessions"
    )
    interval_s: float = Field(3600.0, gt=0, description="seconds between evaluations")
    port: PositiveInt = Field(9090, description="/metrics port")
    once: bool = Field(False, description="evaluate once, print, exit (no server)")
