"""Every monitor setting, typed, in one place: env prefix FORECASTER_MONITOR_, CLI flags mirror it."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt
from pydantic_settings import BaseSettings

from bundle.conventions import settings_config


class MonitorSettings(BaseSettings):
    model_config = settings_config("monitor", "MONITOR")

    model_source: str = Field(..., description="bundle directory or models:/<name>@<alias>")
    tracking_uri: str | None = Field(None, description="MLflow tracking server for models:/ sources")
    model_name: str = Field(..., description="the served model's name (the `model` label)")
    variant: Literal["fp32", "int8"] = Field("fp32", description="which ONNX variant to score (as served)")
    source: Literal["yfinance", "csv"] = Field("yfinance", description="published closes: yfinance or a CSV")
    ticker: str = Field("PETR4.SA", description="Yahoo ticker (yfinance source)")
    csv: Path | None = Field(None, description="CSV of published closes (csv source), re-read every run")
    start: date = Field(date(2020, 1, 1), description="first date fetched (only the tail is used)")
    end: date | None = Field(None, description="last date fetched (default: today)")
    fetch_retries: PositiveInt = Field(3, description="fetch attempts before a run fails")
    fetch_backoff_s: float = Field(5.0, ge=0, description="first retry delay, doubled each time")
    sessions: PositiveInt = Field(20, description="realized MAE over the last N sessions")
    interval_sessions: PositiveInt = Field(
        120, description="realized coverage and interval score over the last N sessions"
    )
    interval_s: float = Field(3600.0, gt=0, description="seconds between evaluations")
    port: PositiveInt = Field(9090, description="/metrics port")
    once: bool = Field(False, description="evaluate once, print, exit (no server)")
