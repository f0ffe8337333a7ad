"""`python -m monitor`: score the champion (or each ticker's, with --universe) on published closes,
keep its online calibration state current (monitor.calibration), export gauges, repeat."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime

from mlflow.exceptions import MlflowException
from prometheus_client import start_http_server
from pydantic_settings import CliApp

from bundle import BundleError, OnnxForecaster
from bundle.online import ModelIdentity
from bundle.outputs import level_label
from bundle.source import BundleSource
from marketdata.calendar import SessionCalendar
from marketdata.errors import DataError
from marketdata.frames import read_csv, validate
from marketdata.history import fetch_yfinance
from monitor import metrics
from monitor.calibration import StateStore, Tracker, history_of, identity_of, replayed_bands
from monitor.realized import Realized, realized
from monitor.settings import MonitorSettings
from monitor.state_configmap import ConfigMapStore, StoreError
from monitor.state_file import FileStore

log = logging.getLogger("monitor")
# What a run can meet in normal weather: a data source down or returning garbage (DataError, OSError,
# ValueError), a registry or bundle problem (MlflowException, BundleError): one log line, counted,
# the last gauges kept. Anything else is a bug and is logged with its traceback.
EXPECTED_FAILURES = (DataError, BundleError, MlflowException, OSError, ValueError)
# The calibration state's own weather: its store refusing or unreachable, too few sessions for a state.
CALIBRATION_FAILURES = (StoreError, OSError, ValueError)


def state_store(settings: MonitorSettings) -> StateStore | None:
    """Where the online calibration states are kept, as the settings say (None: not kept)."""
    if settings.calibration_dir is not None:
        return FileStore(settings.calibration_dir)
    if not settings.calibration_configmap:
        return None
    from retrainer.kube import KubeClient
    from retrainer.settings import KubeAccess

    access = KubeAccess(namespace=settings.namespace, api_server=settings.api_server,
                        sa_token_path=settings.sa_token_path, ca_path=settings.ca_path)  # fmt: skip
    return ConfigMapStore(KubeClient(access), settings.calibration_configmap)


class Monitor:
    def __init__(self, settings: MonitorSettings, store: StateStore | None = None) -> None:
        self.settings = settings
        self.source = BundleSource(settings.model_source, settings.tracking_uri, None)
        self.served: tuple[str, OnnxForecaster] | None = None
        self.previous_version: str | None = None
        store = store or state_store(settings)
        self.tracker = Tracker(store, settings.model_name) if store is not None else None
        self.calendar = SessionCalendar(settings.calendar) if settings.calendar else None

    def forecaster(self) -> tuple[str, OnnxForecaster]:
        ref = self.source.resolve()
        if self.served is None or self.served[0] != ref.version:
            self.served = (ref.version, OnnxForecaster(self.source.fetch(ref), self.settings.variant))
        return self.served

    def evaluate(self) -> Realized:
        s = self.settings
        frame = read_csv(s.csv) if s.source == "csv" else fetch_yfinance(s)
        if self.calendar is not None:
            frame, dropped = self.calendar.settled_rows(frame, datetime.now(UTC))
            if dropped:
                log.info("%s: %d row(s) of sessions not yet closed left out", s.model_name, dropped)
        frame, _ = validate(
            frame, window=1, min_windows=max(s.sessions, s.interval_sessions), drop_frozen=True
        )
        version, forecaster = self.forecaster()
        history = history_of(frame)
        identity = identity_of(s.model_name, version, forecaster)
        bands = replayed_bands(identity, history, forecaster, s.interval_sessions)
        result = realized(history.close, history.dates, forecaster, s.sessions, s.interval_sessions, bands)
        labels = {"model": s.model_name, "version": version}
        if self.previous_version not in (None, version):  # a new champion: drop the old series
            for gauge in (
                metrics.MAE,
                metrics.NAIVE_MAE,
                metrics.RATIO,
                metrics.SESSIONS,
                *metrics.BY_VERSION,
            ):
                gauge.remove(s.model_name, self.previous_version)  # absent series: nothing to remove
            for coverage in result.coverage:
                metrics.COVERAGE.remove(s.model_name, self.previous_version, level_label(coverage))
            for coverage in result.winkler:
                metrics.WINKLER.remove(s.model_name, self.previous_version, level_label(coverage))
        self.previous_version = version
        metrics.MAE.labels(**labels).set(result.mae)
        metrics.NAIVE_MAE.labels(**labels).set(result.naive_mae)
        metrics.RATIO.labels(**labels).set(result.ratio)
        metrics.SESSIONS.labels(**labels).set(result.sessions)
        for coverage, value in result.coverage.items():
            metrics.COVERAGE.labels(**labels, coverage=level_label(coverage)).set(value)
        for coverage, value in result.winkler.items():
            metrics.WINKLER.labels(**labels, coverage=level_label(coverage)).set(value)
        metrics.INTERVAL_ONLINE.labels(**labels).set(1 if result.calibration == "online" else 0)
        self.calibrate(identity, history, forecaster)
        latest = datetime(result.latest.year, result.latest.month, result.latest.day, tzinfo=UTC)
        metrics.LATEST_CLOSE.labels(s.model_name).set(latest.timestamp())
        metrics.LAST_SUCCESS.labels(s.model_name).set(time.time())
        metrics.RUNS.labels(s.model_name, "success").inc()
        metrics.LAST_RUN_OK.labels(s.model_name).set(1)
        log.info("%s version %s: realized MAE %.4f, naive %.4f, ratio %.3f over %d sessions to %s",
                 s.model_name, version, result.mae, result.naive_mae, result.ratio, result.sessions,
                 result.latest)  # fmt: skip
        return result

    def calibrate(self, identity: ModelIdentity, history, forecaster: OnnxForecaster) -> None:
        """Advance the online calibration state over the sessions fetched and store it if it moved;
        a failure is counted and logged, and retried next run (the realized gauges stand)."""
        model = self.settings.model_name
        if self.tracker is None:
            return
        try:
            state = self.tracker.advance(identity, history, forecaster, datetime.now(UTC))
            if state is None:  # format 1: static intervals, nothing to recalibrate
                return
            if self.tracker.store_if_changed():
                log.info("%s: online calibration state as of %s stored in %s (sigma %.5f, %d scores)",
                         model, state.as_of, self.tracker.store.where(model), state.next_sigma,
                         len(state.scores))  # fmt: skip
        except CALIBRATION_FAILURES as exc:
            log.error("%s: online calibration state not stored: %s", model, exc)
            metrics.CALIBRATION_RUNS.labels(model, "failure").inc()
            return
        metrics.CALIBRATION_RUNS.labels(model, "success").inc()
        labels = {"model": model, "version": identity.model_version}
        as_of = datetime(state.as_of.year, state.as_of.month, state.as_of.day, tzinfo=UTC)
        metrics.CALIBRATION_AS_OF.labels(**labels).set(as_of.timestamp())
        metrics.CALIBRATION_UPDATED.labels(**labels).set(state.updated_at.timestamp())
        metrics.CALIBRATION_SIGMA.labels(**labels).set(state.next_sigma)
        metrics.CALIBRATION_SCORES.labels(**labels).set(len(state.scores))

    def run_once(self) -> bool:
        try:
            self.evaluate()
            return True
        except EXPECTED_FAILURES as exc:  # data source down or garbage, registry down: keep the gauges
            log.error("evaluation of %s failed: %s", self.settings.model_name, exc)
        except Exception:  # a bug, not the weather: the traceback says where
            log.exception("evaluation of %s failed unexpectedly", self.settings.model_name)
        metrics.RUNS.labels(self.settings.model_name, "failure").inc()
        metrics.LAST_RUN_OK.labels(self.settings.model_name).set(0)
        return False


class Universe:
    """One Monitor per ticker of --universe, each on its own champion and closes: a ticker that
    fails (no champion yet, fetch error) is counted and keeps its gauges; the others still run."""

    def __init__(self, settings: MonitorSettings) -> None:
        store = state_store(settings)  # one store (and API client) for every ticker's state
        self.monitors = [Monitor(settings.for_ticker(t), store) for t in settings.tickers]

    def run_once(self) -> bool:
        """True if every ticker was evaluated."""
        return all([monitor.run_once() for monitor in self.monitors])


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("yfinance").setLevel(logging.CRITICAL)
    settings = CliApp.run(MonitorSettings, cli_args=sys.argv[1:] if argv is None else argv)
    monitor = Universe(settings) if settings.universe else Monitor(settings)
    if settings.once:
        return 0 if monitor.run_once() else 1
    start_http_server(settings.port)
    while True:
        monitor.run_once()
        time.sleep(settings.interval_s)


if __name__ == "__main__":
    sys.exit(main())
