"""`python -m monitor`: score the champion (or each ticker's, with --universe) on published closes,
export gauges, repeat."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime

from mlflow.exceptions import MlflowException
from prometheus_client import start_http_server
from pydantic_settings import CliApp

from bundle import BundleError, OnnxForecaster
from bundle.outputs import level_label
from bundle.source import BundleSource
from marketdata.errors import DataError
from marketdata.frames import read_csv, validate
from marketdata.history import fetch_yfinance
from monitor import metrics
from monitor.realized import Realized, realized
from monitor.settings import MonitorSettings

log = logging.getLogger("monitor")
# What a run can meet in normal weather: a data source down or returning garbage (DataError, OSError,
# ValueError), a registry or bundle problem (MlflowException, BundleError): one log line, counted,
# the last gauges kept. Anything else is a bug and is logged with its traceback.
EXPECTED_FAILURES = (DataError, BundleError, MlflowException, OSError, ValueError)


class Monitor:
    def __init__(self, settings: MonitorSettings) -> None:
        self.settings = settings
        self.source = BundleSource(settings.model_source, settings.tracking_uri, None)
        self.served: tuple[str, OnnxForecaster] | None = None
        self.previous_version: str | None = None

    def forecaster(self) -> tuple[str, OnnxForecaster]:
        ref = self.source.resolve()
        if self.served is None or self.served[0] != ref.version:
            self.served = (ref.version, OnnxForecaster(self.source.fetch(ref), self.settings.variant))
        return self.served

    def evaluate(self) -> Realized:
        s = self.settings
        frame = read_csv(s.csv) if s.source == "csv" else fetch_yfinance(s)
        frame, _ = validate(
            frame, window=1, min_windows=max(s.sessions, s.interval_sessions), drop_frozen=True
        )
        version, forecaster = self.forecaster()
        result = realized(
            frame["close"].to_numpy(), [d.date() for d in frame["date"]], forecaster, s.sessions,
            s.interval_sessions,
        )  # fmt: skip
        labels = {"model": s.model_name, "version": version}
        if self.previous_version not in (None, version):  # a new champion: drop the old series
            for gauge in (metrics.MAE, metrics.NAIVE_MAE, metrics.RATIO, metrics.SESSIONS):
                gauge.remove(s.model_name, self.previous_version)
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
        latest = datetime(result.latest.year, result.latest.month, result.latest.day, tzinfo=UTC)
        metrics.LATEST_CLOSE.labels(s.model_name).set(latest.timestamp())
        metrics.LAST_SUCCESS.labels(s.model_name).set(time.time())
        metrics.RUNS.labels(s.model_name, "success").inc()
        metrics.LAST_RUN_OK.labels(s.model_name).set(1)
        log.info("%s version %s: realized MAE %.4f, naive %.4f, ratio %.3f over %d sessions to %s",
                 s.model_name, version, result.mae, result.naive_mae, result.ratio, result.sessions,
                 result.latest)  # fmt: skip
        return result

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
        self.monitors = [Monitor(settings.for_ticker(t)) for t in settings.tickers]

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
