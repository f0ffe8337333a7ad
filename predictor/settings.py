"""Every predictor setting, typed, in one place: env prefix FORECASTER_PREDICTOR_, CLI mirrors it.

kserve's own flags (--model_name, --http_port, --workers, ...) come from kserve's parser and keep
its snake_case; ours follow the project's convention (kebab-case, --flag/--no-flag). The guard's,
the fast path's and logging's are serving.cli's, shared with the transformer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from bundle.conventions import settings_config
from serving.cli import ServingSettings


class PredictorSettings(ServingSettings):
    model_config = settings_config("predictor", "PREDICTOR", extra="ignore")

    model_source: str = Field(
        "/mnt/models",
        description="bundle directory (KServe's storage initializer puts it at /mnt/models) "
        "or an MLflow URI models:/<name>@<alias> (or models:/<name>/<version>)",
    )
    model_sources: str | None = Field(
        None,
        description="several models in one process: comma-separated sources (models:/<name>@<alias>, "
        "models:/<name>/<version> or bundle directories), each served under its registered model's "
        "(or directory's) name; a --model-source directory whose subdirectories hold bundles serves "
        "one model per subdirectory too",
    )
    model_tag: str | None = Field(
        None,
        description="KEY=VALUE: serve every registered model carrying this tag, each at "
        "--model-alias (the set is read once at start: a new model needs a restart)",
    )
    model_alias: str = Field("champion", description="the alias served for --model-tag models")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking server (http://...) for models:/ sources"
    )
    variant: Literal["fp32", "int8"] = Field("fp32", description="which ONNX variant to serve")
    threads: PositiveInt = Field(1, description="onnxruntime intra-op threads per worker")
    max_batch: PositiveInt = Field(256, description="largest batch accepted per request")
    max_horizon: PositiveInt = Field(20, description="largest time-series forecast horizon")
    request_timeout_s: float = Field(
        10.0,
        gt=0,
        description="seconds a client has to send a whole request (headers and body); "
        "past that, or when it sends nothing, its connection is closed",
    )
    max_connections: PositiveInt = Field(
        1000, description="connections served at once; requests beyond are answered 503 and closed"
    )
    reload_interval_s: float = Field(
        60.0, ge=0, description="poll each MLflow alias every N s; 0 disables hot reload"
    )
    load_concurrency: PositiveInt = Field(
        4,
        description="models loaded or polled at once by the process's one loader (downloads overlap; "
        "many models never mean many MLflow calls at once)",
    )
    load_retry_max_s: float = Field(30.0, gt=0, description="longest wait between load retries")
    mlflow_timeout_s: PositiveInt = Field(
        10,
        description="seconds MLflow's client waits for the registry or its artifact store to connect "
        "or to send the next bytes (MLFLOW_HTTP_REQUEST_TIMEOUT, set for this process only)",
    )
    mlflow_retries: NonNegativeInt = Field(
        2,
        description="retries of one failed MLflow request, 0, 2, 4 s apart (MLFLOW_HTTP_REQUEST_MAX_RETRIES, "
        "for this process only; MLflow's own 7 take minutes): the loader retries on its own schedule. "
        "One registry call waits at most (retries + 1) x --mlflow-timeout-s plus the backoff",
    )
    cache_dir: str | None = Field(None, description="where MLflow bundles are downloaded")
    calibration_dir: Path | None = Field(
        None,
        description="directory of the monitor's online calibration states, <model name>.json each (in a "
        "cluster a ConfigMap mounted read-only); none: every model serves its bundle's calibration",
    )
    calibration_max_age_s: float = Field(
        345600.0,
        gt=0,
        description="a state computed longer ago than this (4 days: a weekend plus a holiday) is ignored "
        "and the bundle's calibration served",
    )
    calibration_poll_s: float = Field(
        60.0, gt=0, description="re-read each model's calibration state and re-check its age every N s"
    )
    batching: bool = Field(
        False,
        description="opt-in: forecast the fast path's requests read in one event-loop turn in one model "
        "call (no added wait; 0.43-0.50x the CPU per request at c = 8 and 32, its p99 better or worse "
        "by load, BENCHMARKS.md). Answers then depend on what else is in flight: fp32 may differ in the "
        "last bits (onnxruntime's batched kernels, by CPU), int8 by ~1e-5 relative on a trained LSTM (its "
        "dynamic quantization scales by the batch's range). Off: the same request, the same bytes, always",
    )
