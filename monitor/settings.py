"""Every monitor setting, typed, in one place: env prefix FORECASTER_MONITOR_, CLI flags mirror it."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from bundle.conventions import UniverseSettings, model_name_for, parse_universe, settings_config
from retrainer.settings import SA_DIR


class MonitorSettings(UniverseSettings):
    """With --universe: each ticker's models:/<model name>@<alias> scored on its own closes, one
    failing ticker never stopping the others."""

    model_config = settings_config("monitor", "MONITOR")

    model_source: str | None = Field(
        None,
        description="bundle directory or models:/<name>@<alias> (one model; required without --universe)",
    )
    tracking_uri: str | None = Field(None, description="MLflow tracking server for models:/ sources")
    model_name: str | None = Field(
        None, description="the served model's name (the `model` label; required without --universe)"
    )
    alias: str = Field("champion", description="registry alias scored for each ticker of --universe")
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
    calendar: str | None = Field(
        "BVMF",
        description="exchange calendar (exchange_calendars name; BVMF is B3, XNYS for the sample): a "
        "session is scored once its close has settled (Yahoo's row of a session in progress is a live "
        "price); empty: every row the source returns",
    )
    calibration_dir: Path | None = Field(
        None,
        description="keep each model's online calibration state in DIR/<model name>.json (written "
        "atomically; the predictor's --calibration-dir outside a cluster)",
    )
    calibration_configmap: str | None = Field(
        None,
        description="keep each model's online calibration state in this ConfigMap, key <model name>.json "
        "('{model}' in the name becomes the model's name: one ConfigMap per model), through the "
        "Kubernetes API (get and patch only: the chart creates it)",
    )
    namespace: str | None = Field(None, description="namespace of --calibration-configmap")
    api_server: str = Field("https://kubernetes.default.svc", description="Kubernetes API base URL")
    sa_token_path: str | None = Field(
        f"{SA_DIR}/token", description="service account token, re-read on a 401; empty behind `kubectl proxy`"
    )
    ca_path: str | None = Field(f"{SA_DIR}/ca.crt", description="API server CA; None for http servers")

    @model_validator(mode="after")
    def _check(self) -> MonitorSettings:
        if self.calibration_dir is not None and self.calibration_configmap:
            raise ValueError("keep the calibration state in --calibration-dir or --calibration-configmap, "
                             "not both")  # fmt: skip
        if self.calibration_configmap and not self.namespace:
            raise ValueError("--calibration-configmap needs --namespace")
        if self.universe is None:
            if self.model_source is None or self.model_name is None:
                raise ValueError("--model-source and --model-name are required without --universe")
            if self.csv_dir is not None:
                raise ValueError("--csv-dir is for --universe; one model reads --csv")
            return self
        parse_universe(self.universe)
        if self.model_source is not None or self.model_name is not None:
            raise ValueError("--universe scores models:/<model name>@<alias> per ticker: drop "
                             "--model-source and --model-name")  # fmt: skip
        if self.tracking_uri is None:
            raise ValueError("--universe reads the registry: give --tracking-uri")
        if self.source == "csv" and (self.csv_dir is None or self.csv is not None):
            raise ValueError("--universe with --source csv reads --csv-dir DIR/<TICKER>.csv (not --csv)")
        return self

    def for_ticker(self, ticker: str) -> MonitorSettings:
        """One ticker's settings, exactly those of a one-model monitor on its champion."""
        name = model_name_for(ticker)
        return self.model_copy(update={
            "universe": None, "ticker": ticker, "model_name": name,
            "model_source": f"models:/{name}@{self.alias}",
            "csv": self.csv_dir / f"{ticker}.csv" if self.csv_dir else None, "csv_dir": None,
        })  # fmt: skip
