"""The kserve Model: serves one checked bundle, loads in the background, hot-swaps on alias moves.

One per served model (a process may serve many: predictor.sources); the process's one loader
thread (predictor.loader) loads and polls them all.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass, replace

import numpy as np
import orjson
from kserve import Model
from kserve.protocol.infer_type import InferRequest, InferResponse
from prometheus_client import Counter, Gauge, Histogram

from bundle import BundleError, Forecast, OnnxForecaster
from bundle.io import BundleMissingError
from bundle.outputs import Output, input_metadata, outputs
from bundle.redact import redact
from bundle.source import BundleSource, ModelRef, is_mlflow
from predictor import codecs
from predictor.calibration import Calibration, Calibrator, report
from predictor.loader import process_loader
from predictor.settings import PredictorSettings
from serving.errors import NotReadyError
from serving.metrics import latency
from serving.v2 import V2Request, v2_answer

log = logging.getLogger(__name__)

# Each model's series (multiprocess-aggregated with the guard's request metrics, serving.metrics).
INFERENCE_LATENCY = latency(
    "forecaster_inference_duration_seconds", "onnxruntime time per request (scaling included)", "model"
)
PREDICTIONS = Counter(
    "forecaster_predictions_total", "Forecasts served (one per batch row)", ["model", "version"]
)
RELOADS = Counter("forecaster_reloads_total", "Model (re)loads by result", ["model", "result"])
MODEL_INFO = Gauge("forecaster_model_info", "1 for the bundle being served (0 for ones served before)",
                   ["model", "version", "variant", "ticker", "trained_at", "data_end"],
                   multiprocess_mode="livemax")  # fmt: skip
MODEL_READY = Gauge("forecaster_model_ready", "1 when a checked model is serving", ["model"],
                    multiprocess_mode="livemin")  # fmt: skip


# What a model not serving says to anyone (readiness, model readiness, a 503): its state, never a
# URI, a path or upstream text; those go to the log and to callers holding the token.
LOADING, UNAVAILABLE, NOT_FOUND, REFUSED, FAILED = "loading", "unavailable", "not_found", "refused", "failed"
STATES = {
    LOADING: "loading: no bundle has been loaded and self-tested yet",
    UNAVAILABLE: "unavailable: the model registry or its storage did not answer; retrying",
    NOT_FOUND: "not found: its source holds no such bundle, alias or version (yet); retrying",
    REFUSED: "refused: its bundle is incomplete, corrupt, of an unknown format or failed its self-test",
    FAILED: "failed: its load failed unexpectedly (see the predictor's log); retrying",
}
# MLflow's error codes for a name, alias or version the registry does not have.
NOT_FOUND_CODES = frozenset(("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"))


def init_model_series(model: str, version: str) -> None:
    INFERENCE_LATENCY.labels(model)
    PREDICTIONS.labels(model, version)
    RELOADS.labels(model, "failure")


@dataclass(frozen=True)
class Served:
    """What answers requests right now; replaced as a whole, so a request sees one model."""

    version: str
    forecaster: OnnxForecaster
    # This model's series, labelled once per swap rather than looked up on every request.
    latency: Histogram
    predictions: Counter
    # The calibration its answers use (predictor.calibration): swapped with the model, or alone.
    calibration: Calibration

    @property
    def info_labels(self) -> dict[str, str]:
        meta = self.forecaster.bundle.metadata
        return {
            "version": self.version, "variant": self.forecaster.variant, "ticker": meta.ticker,
            "trained_at": meta.trained_at.isoformat(), "data_end": meta.data_end.isoformat(),
        }  # fmt: skip


@dataclass(frozen=True)
class Decoded:
    served: Served
    closes: np.ndarray
    v2: bool
    request_id: str | None
    outputs: tuple[Output, ...]  # what the client asked for (v2 `outputs`), else every declared output
    binary: tuple[bool, ...] = ()  # per output: raw bytes over REST (binary tensor extension)

    def forecast(self) -> Forecast:
        """This request's forecast alone, timed (predictor.batching forecasts several at once)."""
        served = self.served
        with served.latency.time():
            return codecs.finite_forecast(served.forecaster, self.closes, 1, served.calibration.distribution)


class ForecastModel(Model):
    def __init__(self, name: str, settings: PredictorSettings, source: str | None = None) -> None:
        super().__init__(name)
        self.settings = settings
        self.source_uri = source or settings.model_source
        self.source = BundleSource(self.source_uri, settings.tracking_uri, settings.cache_dir)
        self.served: Served | None = None
        self.error: str | None = None  # why the last load failed, while nothing is served (redacted)
        self.state: str = LOADING  # what readiness answers say to anyone: a state of STATES
        self.attempted = False  # the first load attempt is over (served, or failed with `error`)
        self._failed: set[str] = set()
        self._loader_pid: int | None = None
        self._stop = threading.Event()
        self.calibrator = Calibrator(name, settings.calibration_dir, settings.calibration_max_age_s)

    # -- lifecycle ---------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        """kserve pickles the model into each worker: ship settings only; each worker loads."""
        state = self.__dict__.copy()
        state.update(served=None, ready=False, _loader_pid=None, _stop=None, _failed=set(),
                     error=None, state=LOADING, attempted=False)  # fmt: skip
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._stop = threading.Event()

    def start_loading(self) -> None:
        """Hand this model to this process's loader once (live at once, ready after a self-test)."""
        if self._loader_pid == os.getpid():
            return
        self._loader_pid = os.getpid()
        MODEL_READY.labels(self.name).set(0)
        settings = self.settings
        process_loader(settings.reload_interval_s, settings.load_retry_max_s, settings.load_concurrency).add(
            self
        )

    def load(self) -> bool:
        """kserve may call this (e.g. gRPC on a not-ready model): never block, never load twice."""
        self.start_loading()
        return self.ready

    def start(self) -> None:
        """kserve's default marks the model ready; readiness here follows the self-test only."""

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        self.ready = False

    # What the loader asks.
    @property
    def loaded(self) -> bool:
        return self.served is not None

    @property
    def polls(self) -> bool:
        """An alias can move; a directory or a pinned version cannot."""
        return is_mlflow(self.source_uri) and "@" in self.source_uri

    @property
    def recheck_s(self) -> float:
        """Seconds between two reads of the calibration state (0: none to read)."""
        return self.settings.calibration_poll_s if self.settings.calibration_dir is not None else 0.0

    @property
    def remote(self) -> bool:
        """Loaded from the MLflow registry (which all such models share)."""
        return is_mlflow(self.source_uri)

    @property
    def stopped(self) -> bool:
        return self._stop is None or self._stop.is_set()

    def not_ready_reason(self, detailed: bool = False) -> str:
        """Why nothing is served ("" when something is). To anyone: the state (STATES) and nothing
        else; `detailed` (a caller holding the token): the source and the failure's own words, URIs
        redacted (bundle.redact), which may name paths and the registry's address."""
        if self.served is not None:
            return ""
        if not detailed:
            return STATES[self.state]
        if self.error:
            return f"cannot load {redact(self.source_uri)}: {self.error}"
        return f"loading {redact(self.source_uri)}: no bundle has been loaded and self-tested yet"

    def not_ready_error(self) -> NotReadyError:
        """The 503 of a request to this model while nothing is served: its state, and the details
        for a caller that may read them (serving.errors.disclosed)."""
        return NotReadyError(self.name, self.not_ready_reason(), private=self.not_ready_reason(detailed=True))

    def _failed_with(self, exc: Exception) -> None:
        self.state, self.error = state_of(exc), _reason(exc)

    def skip(self, reason: str) -> None:
        """The loader passed this model's turn (its registry is unreachable): that is the reason."""
        if self.served is None:
            self.state, self.error = UNAVAILABLE, reason
        self.attempted = True

    def try_reload(self) -> bool:
        """Resolve the source; if it moved, fetch, check and swap. Any failure keeps the old model.
        Then re-check the calibration state."""
        try:
            ok = self._reload()
            self.recalibrate()
            return ok
        finally:
            self.attempted = True

    def recalibrate(self) -> None:
        """Re-read the state and re-check its age; swap model and calibration as one reference."""
        served = self.served
        if served is None:
            return
        try:
            version = served.version if self.remote else None
            new = self.calibrator.decide(served.forecaster.bundle, version, served.calibration)
        except Exception:  # a bug, never a reason to stop serving: keep what is served
            log.exception("%s: cannot re-check its calibration state", self.name)
            return
        if new is not served.calibration:
            self.served = replace(served, calibration=new)
            report(self.name, served.calibration, new)

    def _reload(self) -> bool:
        try:
            ref = self.source.resolve()
        except Exception as exc:  # registry down, alias gone: keep serving
            if self.served is None:
                RELOADS.labels(self.name, "failure").inc()
                self._failed_with(exc)
            self._log_failure(exc, "%s: cannot resolve %s", self.name, redact(self.source_uri))
            return False
        if self.served is not None and ref.version == self.served.version:
            return True
        if ref.version in self._failed:
            return False
        try:
            self._swap_in(ref)
        except Exception as exc:
            RELOADS.labels(self.name, "failure").inc()
            if self.served is not None:  # a bad new version: remember it, keep the old
                self._failed.add(ref.version)
            else:
                self._failed_with(exc)
            self._log_failure(exc, "%s: cannot load version %s; still serving %s", self.name, ref.version,
                              self.served.version if self.served else "nothing")  # fmt: skip
            return False
        self.error, self.state = None, LOADING
        return True

    @staticmethod
    def _log_failure(exc: Exception, message: str, *args: object) -> None:
        """One line for normal weather (a registry down or an alias gone: MLflow's exceptions and
        OSError; a bundle missing, corrupt or failing its self-test: BundleError); a traceback for
        anything else, which is a bug. MLflow is recognized by module so that a directory source
        never imports it."""
        if isinstance(exc, BundleError | OSError) or _from_mlflow(exc):
            log.warning(message + ": %s", *args, redact(str(exc)))
        else:
            log.exception(message, *args)  # redacted too: bundle.redact's records

    def _swap_in(self, ref: ModelRef) -> None:
        bundle = self.source.fetch(ref)
        forecaster = OnnxForecaster(bundle, self.settings.variant, self.settings.threads)
        forecaster.self_test()
        latency = INFERENCE_LATENCY.labels(self.name)
        predictions = PREDICTIONS.labels(self.name, ref.version)
        calibration = self.calibrator.decide(bundle, ref.version if self.remote else None)
        old, new = self.served, Served(ref.version, forecaster, latency, predictions, calibration)
        new_info = MODEL_INFO.labels(model=self.name, **new.info_labels)
        self.served = new  # one reference assignment: requests see the old or the new model
        if old is not None:
            MODEL_INFO.labels(model=self.name, **old.info_labels).set(0)
        new_info.set(1)
        report(self.name, old.calibration if old is not None else None, calibration)
        RELOADS.labels(self.name, "success").inc()
        init_model_series(self.name, ref.version)
        MODEL_READY.labels(self.name).set(1)
        self.ready = True
        log.info("serving %s version %s (%s)", self.name, ref.version, self.settings.variant)

    # -- protocol ----------------------------------------------------------------------------
    def require(self) -> Served:
        """The model serving now (one snapshot per request), or ModelNotReady."""
        served = self.served
        if served is None:
            raise self.not_ready_error()  # its details only to a caller allowed them
        return served

    @property
    def window(self) -> int | None:
        return self.served.forecaster.window if self.served else None

    def get_input_types(self) -> list[dict]:
        return [input_metadata(self.window)]

    def get_output_types(self) -> list[dict]:
        """The bundle's declared outputs; only the point forecast before one is loaded."""
        declared = self.served.forecaster.outputs if self.served else outputs(())
        return [out.metadata() for out in declared]

    def preprocess(self, payload: InferRequest | V2Request | dict, headers: dict | None = None) -> Decoded:
        """A v2 request (kserve's `InferRequest`, or the fast path's plain JSON) or a v1 body, checked."""
        served = self.require()
        window, limit = served.forecaster.window, self.settings.max_batch
        declared = served.forecaster.outputs
        if isinstance(payload, InferRequest | V2Request):
            decode = codecs.decode_v2_json if isinstance(payload, V2Request) else codecs.decode_v2
            closes = decode(payload, window, limit)
            wanted = codecs.requested_outputs(payload, declared)
            binary = codecs.binary_outputs(payload, wanted)
            return Decoded(served, closes, True, payload.id, wanted, binary)
        return Decoded(served, codecs.decode_v1(payload, window, limit), False, None, declared)

    def predict(self, payload: Decoded, headers: dict | None = None) -> InferResponse | dict:
        return self.answer(payload, payload.forecast())

    def answer(self, payload: Decoded, result: Forecast) -> InferResponse | dict:
        """The encoded, counted answer to a decoded request from its forecast, for kserve's routes."""
        served = payload.served
        served.predictions.inc(len(payload.closes))
        parameters = served.calibration.parameters
        if payload.v2:
            return codecs.encode_v2(result, payload.outputs, self.name, payload.request_id, served.version,
                                    payload.binary, parameters)  # fmt: skip
        return codecs.encode_v1(result, payload.outputs, parameters)

    def answer_json(self, payload: Decoded, result: Forecast) -> bytes:
        """`answer` as kserve's route writes it (JSON), without kserve's objects: the fast path's."""
        served = payload.served
        served.predictions.inc(len(payload.closes))
        parameters = served.calibration.parameters
        if not payload.v2:
            return orjson.dumps(codecs.encode_v1(result, payload.outputs, parameters))
        return v2_answer({
            "model_name": self.name, "model_version": served.version,
            "id": payload.request_id or uuid.uuid4().hex, "parameters": parameters,
            "outputs": codecs.v2_json_outputs(result, payload.outputs),
        })  # fmt: skip


def _reason(exc: Exception) -> str:
    """A failure as one line for detailed readiness answers (a model's own words, never a traceback,
    never a credential)."""
    text = " ".join(redact(str(exc)).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _from_mlflow(exc: Exception) -> bool:
    """MLflow's exceptions, recognized by module so that a directory source never imports it."""
    return type(exc).__module__.startswith("mlflow.")


def state_of(exc: Exception) -> str:
    """The state (of STATES) a failed load leaves a model in, from its exception alone."""
    if isinstance(exc, BundleMissingError) or getattr(exc, "error_code", None) in NOT_FOUND_CODES:
        return NOT_FOUND
    if isinstance(exc, BundleError):
        return REFUSED
    if isinstance(exc, OSError) or _from_mlflow(exc):
        return UNAVAILABLE
    return FAILED


def forecast_models(models: list) -> list[ForecastModel]:
    """This process's forecast models (kserve's registry may hold others)."""
    return [m for m in models if isinstance(m, ForecastModel)]


def served_settings(models: list) -> PredictorSettings:
    """The one settings object of this process's forecast models (they share one command line)."""
    ours = forecast_models(models)
    if not ours:
        raise RuntimeError("no forecast model is registered with the kserve model server")
    return ours[0].settings
