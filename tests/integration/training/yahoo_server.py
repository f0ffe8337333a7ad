"""A local stand-in for Yahoo's v8 chart API, serving real PETR4 rows in Yahoo's JSON shape."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pandas as pd

B3_OPEN_UTC = pd.Timedelta(hours=13)  # Yahoo stamps B3 daily bars at 10:00 BRT


def chart_payload(frame: pd.DataFrame, ticker: str) -> dict:
    ts = [int((pd.Timestamp(d).tz_localize("UTC") + B3_OPEN_UTC).timestamp()) for d in frame["date"]]
    last = ts[-1] if ts else 0
    return {
        "chart": {
            "error": None,
            "result": [
                {
                    "meta": {
                        "currency": "BRL",
                        "symbol": ticker,
                        "exchangeName": "SAO",
                        "instrumentType": "EQUITY",
                        "firstTradeDate": 946900800,
                        "regularMarketTime": last,
                        "gmtoffset": -10800,
                        "timezone": "BRT",
                        "exchangeTimezoneName": "America/Sao_Paulo",
                        "priceHint": 2,
                        "dataGranularity": "1d",
                        "range": "",
                        "validRanges": [
                            "1d",
                            "5d",
                            "1mo",
                            "3mo",
                            "6mo",
                            "1y",
                            "2y",
                            "5y",
                            "10y",
                            "ytd",
                            "max",
                        ],
                    },
                    "timestamp": ts,
                    "indicators": {
                        "quote": [{k: frame[k].tolist() for k in ("open", "high", "low", "close", "volume")}],
                        "adjclose": [{"adjclose": frame["close"].tolist()}],
                    },
                }
            ],
        }
    }


class YahooStandIn:
    """Serves `frame` for /v8/finance/chart/<ticker>; the first `failures` requests get a 500."""

    def __init__(self, frame: pd.DataFrame, ticker: str, failures: int = 0) -> None:
        self.frame, self.ticker, self.failures, self.paths = frame, ticker, failures, []

    def handler(self):
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                stand_in.paths.append(self.path)
                if stand_in.failures > 0:
                    stand_in.failures -= 1
                    self.send_error(500, "Internal Server Error")
                    return
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                rows = stand_in.frame
                if "period1" in query:
                    lo = pd.Timestamp(int(query["period1"][0]), unit="s").normalize()
                    hi = pd.Timestamp(int(query["period2"][0]), unit="s")
                    rows = rows[(rows["date"] >= lo) & (rows["date"] < hi)]
                elif query.get("range") == ["1d"]:
                    rows = rows.tail(1)
                body = json.dumps(chart_payload(rows, stand_in.ticker)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@contextmanager
def yahoo_stand_in(monkeypatch, tmp_path, frame: pd.DataFrame, ticker: str, failures: int = 0):
    """Point yfinance at the stand-in (its base URL copies, cookie/crumb, caches)."""
    import yfinance as yf
    import yfinance.base
    import yfinance.data
    import yfinance.scrapers.history

    stand_in = YahooStandIn(frame, ticker, failures)
    server = ThreadingHTTPServer(("127.0.0.1", 0), stand_in.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(yfinance.base, "_BASE_URL_", base)
    monkeypatch.setattr(yfinance.scrapers.history, "_BASE_URL_", base)
    monkeypatch.setattr(
        yfinance.data.YfData, "_get_cookie_and_crumb", lambda self, timeout=30: (None, "basic")
    )
    yf.set_tz_cache_location(str(tmp_path / "yf-cache"))
    yfinance.data.YfData.cache_get.cache_clear()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        yfinance.data.YfData.cache_get.cache_clear()
