"""Prometheus series of the market-data cache: what was fetched, served from cache, failed, and how old."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FETCHES = Counter(
    "forecaster_marketdata_fetches_total", "Refreshes from the data source, by outcome", ["ticker", "outcome"]
)
CACHE_HITS = Counter(
    "forecaster_marketdata_cache_hits_total", "Requests answered from the cache without a fetch", ["ticker"]
)
SOURCE_ERRORS = Counter(
    "forecaster_marketdata_source_errors_total",
    "Failed fetch attempts (every retry counts), by kind: source (unreachable, refused) or data (invalid)",
    ["ticker", "kind"],
)
REFUSED = Counter(
    "forecaster_marketdata_refused_total",
    "Requests refused (503) because the market data has lacked a settled session longer than the bound, "
    "or there is none",
    ["ticker"],
)
AGE = Gauge(
    "forecaster_marketdata_age_seconds",
    "Seconds since the first session the cached data lacks settled on the exchange calendar (0 while it "
    "holds the latest settled session), as of the last request",
    ["ticker"],
    multiprocess_mode="livemax",
)
STALE = Gauge(
    "forecaster_marketdata_stale",
    "1 while the cached data lacks the latest settled session (the source fails or lags), as of the last "
    "request",
    ["ticker"],
    multiprocess_mode="livemax",
)
LAST_SUCCESS = Gauge(
    "forecaster_marketdata_last_success_timestamp_seconds",
    "Unix time of the last successful fetch",
    ["ticker"],
    multiprocess_mode="livemax",
)
