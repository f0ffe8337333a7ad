"""Every training setting, typed, in one place (env prefix FORECASTER_TRAIN_, CLI mirrors)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from bundle.conventions import UniverseSettings, model_name_for, settings_config


class TrainSettings(UniverseSettings):
    """With --universe (an Indexed Job): this run trains the ticker at --universe-index exactly as
    --ticker would."""

    model_config = settings_config("training", "TRAIN")

    # data
    source: Literal["yfinance", "csv", "sample"] = Field(
        "yfinance", description="yfinance (cluster default), csv (--csv PATH) or sample (offline)"
    )
    ticker: str = Field("PETR4.SA", description="Yahoo ticker (yfinance source; label otherwise)")
    csv: Path | None = Field(None, description="CSV with at least date and close columns")
    universe_index: int | None = Field(
        None,
        ge=0,
        description="position in --universe (default: JOB_COMPLETION_INDEX, which Kubernetes sets "
        "in each pod of an Indexed Job)",
    )
    start: date = Field(date(2008, 1, 1), description="first date to fetch (yfinance)")
    end: date | None = Field(None, description="last date to use (default: all)")
    drop_frozen: bool = Field(True, description="drop zero-volume sessions (stale closes)")
    fetch_retries: PositiveInt = Field(4, description="fetch attempts before giving up")
    fetch_backoff_s: float = Field(2.0, ge=0, description="first retry delay, doubled each time")

    # model (the seed's recipe: a stacked LSTM)
    architecture: Literal["lstm", "gru"] = Field(
        "lstm", description="recurrent cell: lstm (the seed's) or gru"
    )
    target: Literal["log_return", "level"] = Field(
        "log_return", description="log_return (default) or level (the seed's formulation)"
    )
    window: PositiveInt = Field(60, description="closes per input window")
    hidden: PositiveInt = Field(50, description="units per recurrent layer")
    layers: PositiveInt = Field(2, description="stacked recurrent layers")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout between recurrent layers")
    learning_rate: float = Field(1e-3, gt=0, description="Adam learning rate")
    batch_size: PositiveInt = Field(64, description="training windows per batch")
    max_epochs: PositiveInt = Field(50, description="epochs at most (early stopping may end sooner)")
    patience: PositiveInt = Field(10, description="early-stopping patience in epochs")
    seed: int = Field(42, description="random seed (training is deterministic for a given seed)")
    threads: PositiveInt = Field(2, description="torch CPU threads")

    # evaluation
    validation_sessions: PositiveInt = Field(250, description="sessions for validation/conformal")
    test_sessions: PositiveInt = Field(500, description="most recent sessions held out for test")
    coverages: tuple[float, ...] = Field((0.8, 0.95), description="conformal interval coverages")
    shrink_to_naive: bool = Field(
        True, description="scale the network's log return by a weight in [0, 1] chosen on validation"
    )
    point_evidence_level: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="the validation-chosen weight is served only if a one-sided Diebold-Mariano test "
        "(absolute errors, Newey-West variance) says it beats naive at this level; else naive",
    )
    ewma_lambda: float = Field(0.94, gt=0, lt=1, description="EWMA decay of the interval's volatility")
    calibration_sessions: PositiveInt = Field(
        750,
        description="windows whose normalized scores calibrate the intervals: all of validation, "
        "then the end of training (coverage sampling error at the 0.8 level: ~1.5 pp at 750)",
    )

    # registry and gate
    tracking_uri: str = Field("sqlite:///mlflow/mlflow.db", description="MLflow tracking URI")
    artifact_root: Path = Field(Path("mlflow/artifacts"), description="artifact store (sqlite)")
    experiment: str = Field("petr4-forecaster", description="MLflow experiment name")
    model_name: str | None = Field(None, description="registered model (default: from ticker)")
    alias: str = Field("champion", description="alias moved by the promotion gate")
    naive_margin: float = Field(0.005, ge=0, description="refuse promotion if MAE > naive MAE * (1 + margin)")
    registry: bool = Field(True, description="log and register in MLflow (else bundle only)")
    skip_if_champion: bool = Field(
        False,
        description="do nothing (exit 0) when the model already has the alias: the bootstrap Job, "
        "run on every install and upgrade, trains only a model that has no champion yet",
    )
    require_promotion: bool = Field(
        False,
        description="exit 3 when the gate does not promote the new version (the bootstrap Job: a "
        "refused first model fails the Job instead of leaving a predictor with nothing to serve)",
    )
    int8: bool = Field(
        True, description="also export a dynamic int8 variant (refused if it leaves most weights fp32)"
    )
    output_dir: Path = Field(Path("artifacts"), description="bundle, plot and forecasts land here")

    @model_validator(mode="after")
    def _check(self) -> TrainSettings:
        if self.universe is not None:
            self.ticker = self._universe_ticker()
        elif self.universe_index is not None:
            raise ValueError("--universe-index needs --universe")
        if self.source == "csv" and (self.csv is None) == (self.csv_dir is None):
            raise ValueError("--source csv needs one of --csv PATH or --csv-dir DIR")
        if self.csv_dir is not None and self.source != "csv":
            raise ValueError("--csv-dir is read by --source csv only")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("--end must be after --start")
        from bundle.distribution import LEVELS

        if not set(self.coverages) <= set(LEVELS):
            raise ValueError(f"--coverages must be among the calibrated levels {LEVELS}")
        if self.source == "sample":
            self.ticker = "AAPL"  # the packaged sample is AAPL, whatever the ticker setting says
        return self

    def _universe_ticker(self) -> str:
        """The ticker this index trains; every way a universe run could train the wrong model fails."""
        tickers = self.tickers
        index = self.universe_index
        if index is None:
            text = os.environ.get("JOB_COMPLETION_INDEX")
            if text is None:
                raise ValueError(
                    "--universe needs --universe-index or JOB_COMPLETION_INDEX (set by Kubernetes "
                    "in an Indexed Job)"
                )
            if not text.strip().isdigit():
                raise ValueError(f"JOB_COMPLETION_INDEX={text!r} is not an index")
            index = int(text)
        if index >= len(tickers):
            raise ValueError(
                f"universe index {index} is out of range: the universe has {len(tickers)} tickers "
                f"(0..{len(tickers) - 1})"
            )
        ticker = tickers[index]
        if "ticker" in self.model_fields_set and self.ticker != ticker:
            raise ValueError(
                f"--ticker {self.ticker} contradicts --universe, whose index {index} is {ticker}: "
                "give one or the other"
            )
        if self.model_name:
            raise ValueError("--model-name names one model; a universe registers one per ticker")
        if self.source == "sample":
            raise ValueError("--source sample is one series (AAPL); a universe needs csv or yfinance")
        if self.csv is not None:
            raise ValueError("--csv is one file; a universe reads --csv-dir DIR/<TICKER>.csv")
        self.universe_index = index
        return ticker

    @property
    def csv_path(self) -> Path | None:
        """The CSV this run reads: --csv, or <TICKER>.csv in --csv-dir."""
        if self.csv_dir is not None:
            return self.csv_dir / f"{self.ticker}.csv"
        return self.csv

    @property
    def registered_name(self) -> str:
        """`PETR4.SA` -> `petr4-sa-forecaster` (bundle.conventions) unless --model-name is given."""
        return self.model_name or model_name_for(self.ticker)
