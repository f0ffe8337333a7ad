"""Intervals measured the way they run: the online state replayed day by day, beside the peers.

Protocol (every series): test = the last 500 sessions, validation = the 250 before, one default
training run (`training.pipeline`, the served point: the network's log return x the weight kept on
evidence). Around that served point:

- **online (served)**: `bundle.replay.replay`, the functions the monitor and the predictor call:
  the state is built from the sessions before test (`initial_state`), each test session gets the
  band of the state as of the day before, then `update` takes its close (and open, high, low);
- online, close-only path: the same state, but every window served as one that is not the state's
  latest (what a request with an older as-of date gets);
- the bundle's static calibration (EWMA-scaled conformal, fixed at training: what serves today);
- GARCH(1,1)-t (`arch`), fitted on the returns before test, rolled with fixed parameters;
- statsforecast's Conformal-Naive: `Naive` with `ConformalIntervals(h=1, n_windows=250)` in
  `cross_validation(h=1, step_size=1, n_windows=500, refit=False)` (scores recomputed every day
  from the last 250 naive errors), around its own point (naive);
- statsforecast's AutoETS with its native intervals (fitted once, `refit=False`), around its point.

Panel: PETR4 (../shared/data), the S&P 500 and NASDAQ (`arch.data`), AAPL 2019-2024
(`hvsampledata`, the training CLI's `--source sample`), and AAPL, GOOG, IBM, MSFT 2000-2013
(`bokeh-sampledata`, split- and dividend-adjusted with its Adj Close). Series without open, high
and low get the close-only proxy in the online state (its two paths are then one).

    python -m bench.intervals [--quick] [--series petr4,sp500,...]
    python -m bench.intervals --csv PATH [--ticker T]   # the same protocol on any daily CSV
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from bench.accuracy import diebold_mariano
from bench.common import PETR4_CSV, save
from bundle import OnnxForecaster, load_bundle
from bundle.io import sha256_bytes
from bundle.online import History, ModelIdentity
from bundle.replay import replay
from marketdata.frames import normalize_columns
from training import pipeline
from training.data import SAMPLE_FILE, SAMPLE_PACKAGE, load_series
from training.scores import interval_scores
from training.settings import TrainSettings
from training.splits import MIN_TRAIN_WINDOWS

TEST, VAL = 500, 250
COVERAGES = (0.8, 0.95)
REFERENCE = "Conformal-Naive (statsforecast, rolling 250)"
ONLINE = "online (served)"
BOKEH = ("AAPL", "GOOG", "IBM", "MSFT")


@dataclass(frozen=True)
class Series:
    key: str
    ticker: str
    csv: Path
    label: str


# -- the panel ----------------------------------------------------------------------------------


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame = frame.rename(columns=str.lower)[["date", "open", "high", "low", "close", "volume"]]
    frame.to_csv(path, index=False)
    return path


def arch_csv(name: str, directory: Path) -> Path:
    """The S&P 500 or NASDAQ daily OHLCV shipped by `arch` (1999-2018)."""
    import importlib

    frame = importlib.import_module(f"arch.data.{name}").load().reset_index()
    frame["Date"] = frame["Date"].dt.strftime("%Y-%m-%d")
    return _write(frame, directory / f"{name}.csv")


def bokeh_csv(ticker: str, directory: Path) -> Path:
    """One of bokeh-sampledata's daily stocks, 2000-2013, adjusted for splits and dividends (its
    unadjusted closes halve on a split day, which is no market move)."""
    import bokeh_sampledata

    raw = pd.read_csv(Path(bokeh_sampledata.__file__).parent / "_data" / "stocks.csv.gz")
    frame = raw[raw["Ticker"] == ticker].sort_values("Date").copy()
    factor = frame["Adj Close"] / frame["Close"]
    for col in ("Open", "High", "Low", "Close"):
        frame[col] = (frame[col] * factor).round(6)
    return _write(frame, directory / f"{ticker.lower()}-bokeh.csv")


def aapl_csv() -> Path:
    """The packaged AAPL sample (`--source sample`: real daily OHLCV 2019-2024)."""
    return Path(str(resources.files(SAMPLE_PACKAGE).joinpath(SAMPLE_FILE)))


def panel(directory: Path) -> list[Series]:
    out = [
        Series("petr4", "PETR4.SA", PETR4_CSV, "PETR4 (B3)"),
        Series("sp500", "^GSPC", arch_csv("sp500", directory), "S&P 500 (arch)"),
        Series("nasdaq", "^IXIC", arch_csv("nasdaq", directory), "NASDAQ (arch)"),
        Series("aapl_hv", "AAPL", aapl_csv(), "AAPL 2019-24 (hvsampledata)"),
    ]
    for t in BOKEH:
        out.append(Series(t.lower(), t, bokeh_csv(t, directory), f"{t} 2000-13 (bokeh-sampledata)"))
    return out


# -- one series -----------------------------------------------------------------------------------


def settings_for(series: Series, out: Path, quick: bool) -> TrainSettings:
    values = {"source": "csv", "csv": series.csv, "ticker": series.ticker, "registry": False,
              "output_dir": out, "test_sessions": TEST, "validation_sessions": VAL}  # fmt: skip
    return TrainSettings(**values, **({"max_epochs": 3} if quick else {}))


def history(settings: TrainSettings) -> tuple[pd.DataFrame, History]:
    """The sessions training used (validated, frozen ones dropped) with the CSV's open/high/low."""
    frame = load_series(settings, TEST + VAL + MIN_TRAIN_WINDOWS).frame.reset_index(drop=True)
    raw = pd.read_csv(settings.csv_path)
    lower = {str(c).strip().lower(): c for c in raw.columns}
    ohlc = None
    if {"open", "high", "low"} <= set(lower):
        dates = normalize_columns(raw)["date"]
        extra = pd.DataFrame(
            {k: pd.to_numeric(raw[lower[k]], errors="coerce") for k in ("open", "high", "low")}
        )
        extra["date"] = dates.to_numpy()
        ohlc = frame[["date"]].merge(extra.drop_duplicates("date"), on="date", how="left")
    dates = [d.date() for d in frame["date"]]
    close = frame["close"].to_numpy(dtype=np.float64)
    if ohlc is None:
        return frame, History(dates, close)
    return frame, History(
        dates, close, *(ohlc[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low"))
    )


def served_points(bundle_dir: Path, close: np.ndarray) -> np.ndarray:
    """`points[t]`: what the bundle serves for session t from the window ending at t - 1."""
    forecaster = OnnxForecaster(load_bundle(bundle_dir), "fp32")
    window = forecaster.window
    windows = np.lib.stride_tricks.sliding_window_view(close, window)[:-1]
    points = np.full(len(close), np.nan)
    for a in range(0, len(windows), 512):
        points[window + a : window + a + 512] = forecaster.predict(windows[a : a + 512])
    return points


def garch_t(close: np.ndarray, start: int) -> tuple[np.ndarray, float]:
    """One-step GARCH(1,1)-t sigma (log-return units) for sessions start.., params fitted on the
    returns before `start`, then fixed; and the t's degrees of freedom."""
    from arch import arch_model

    returns = pd.Series(100.0 * np.diff(np.log(close)))  # index j: session j + 1
    fitted = arch_model(returns, mean="Zero", vol="GARCH", p=1, q=1, dist="t").fit(
        last_obs=start - 1, disp="off"
    )
    variance = fitted.forecast(start=start - 2, horizon=1, reindex=False).variance["h.1"]
    sigma = np.sqrt(variance.loc[start - 2 : len(close) - 3].to_numpy()) / 100.0
    return sigma, float(fitted.params["nu"])


def statsforecast_bands(close: np.ndarray) -> dict[str, dict]:
    """Conformal-Naive (rolling 250) and AutoETS (native intervals), one step over the test window."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, Naive
    from statsforecast.utils import ConformalIntervals

    df = pd.DataFrame({"unique_id": "s", "ds": np.arange(len(close)), "y": close})
    out = {}
    for name, model, alias in (
        (REFERENCE, Naive(prediction_intervals=ConformalIntervals(h=1, n_windows=250)), "Naive"),
        ("AutoETS (statsforecast, native)", AutoETS(), "AutoETS"),
    ):
        start = time.perf_counter()
        sf = StatsForecast(models=[model], freq=1, n_jobs=1)
        cv = sf.cross_validation(df=df, h=1, step_size=1, n_windows=TEST, refit=False, level=[80, 95])
        point = cv[alias].to_numpy()
        bounds = {}
        for c in COVERAGES:
            pct = round(c * 100)
            bounds[c] = (cv[f"{alias}-lo-{pct}"].to_numpy(), cv[f"{alias}-hi-{pct}"].to_numpy())
        out[name] = {"point": point, "bounds": bounds, "seconds": time.perf_counter() - start}
    return out


def quantiles_from(point: np.ndarray, bounds: dict) -> dict[float, np.ndarray]:
    """The served quantiles 0.025, 0.1, 0.5, 0.9, 0.975 as every method has them: its 80% and 95%
    bounds and its point (so pinball compares every method on the same five levels)."""
    return {
        0.025: bounds[0.95][0],
        0.1: bounds[0.8][0],
        0.5: point,
        0.9: bounds[0.8][1],
        0.975: bounds[0.95][1],
    }


def method_bands(frame, hist, points, start, meta, bundle_sha) -> dict[str, dict]:
    point = points[start:]
    identity = ModelIdentity(model_name=meta.model_name, model_version="bench", bundle_sha256=bundle_sha)
    floor = meta.distribution.sigma_floor
    out = {}
    for name, latest in ((ONLINE, True), ("online, close-only path", False)):
        t0 = time.perf_counter()
        result = replay(
            identity, hist, points, start, window=meta.features.window, sigma_floor=floor, latest=latest
        )
        out[name] = {"point": point, "bounds": {c: result.bounds(point, c) for c in COVERAGES},
                     "seconds": time.perf_counter() - t0, "sigma": result.sigma}  # fmt: skip
    dist = meta.distribution
    closes = np.lib.stride_tricks.sliding_window_view(hist.close, meta.features.window)[
        start - meta.features.window : -1
    ]
    sigma = dist.sigma(closes)
    out["bundle's static calibration (EWMA-conformal)"] = {
        "point": point,
        "bounds": {c: tuple(b[:, 0] for b in dist.bounds(point[:, None], sigma, c)) for c in COVERAGES},
    }
    g_sigma, nu = garch_t(hist.close, start)
    from scipy import stats

    scale = np.sqrt((nu - 2) / nu)  # arch's t is standardized to unit variance
    out["GARCH(1,1)-t (arch)"] = {
        "point": point,
        "bounds": {c: (point * np.exp(-stats.t.ppf((1 + c) / 2, nu) * scale * g_sigma),
                       point * np.exp(stats.t.ppf((1 + c) / 2, nu) * scale * g_sigma)) for c in COVERAGES},
    }  # fmt: skip
    out.update(statsforecast_bands(hist.close))
    return out


def point_rows(actual, naive, rows: dict[str, np.ndarray]) -> list[dict]:
    naive_mae = float(np.mean(np.abs(naive - actual)))
    out = []
    for name, f in rows.items():
        mae = float(np.mean(np.abs(f - actual)))
        dm, p = (float("nan"), float("nan")) if np.allclose(f, naive) else diebold_mariano(actual, f, naive)
        out.append({"forecast": name, "mae": mae, "mae_ratio": mae / naive_mae, "dm_stat": dm, "dm_p": p})
    out.append({"forecast": "naive (tomorrow = today)", "mae": naive_mae, "mae_ratio": 1.0})
    return out


def evaluate(series: Series, work: Path, quick: bool) -> dict:
    settings = settings_for(series, work / series.key, quick)
    t0 = time.perf_counter()
    result = pipeline.run(settings)
    seconds = time.perf_counter() - t0
    frame, hist = history(settings)
    start = len(frame) - TEST
    test = result.test_forecasts
    if list(test["date"]) != [d.strftime("%Y-%m-%d") for d in frame["date"].iloc[start:]]:
        raise RuntimeError(f"{series.key}: the test sessions do not line up with the series")
    points = served_points(result.bundle_path, hist.close)
    if not np.allclose(points[start:], test["forecast"].to_numpy(), rtol=1e-9):
        raise RuntimeError(f"{series.key}: replayed points differ from the run's served forecasts")
    actual, naive = hist.close[start:], hist.close[start - 1 : -1]
    sha = sha256_bytes((result.bundle_path / "metadata.json").read_bytes())
    bands = method_bands(frame, hist, points, start, result.metadata, sha)
    scored = {}
    for name, b in bands.items():
        scored[name] = interval_scores(actual, b["bounds"], quantiles_from(b["point"], b["bounds"]))
    ref = scored[REFERENCE]
    rows = []
    for name, s in scored.items():
        row = {"method": name, **s, "seconds": bands[name].get("seconds")}
        for c in COVERAGES:
            pct = round(c * 100)
            row[f"winkler_{pct}_vs_cn"] = s[f"winkler_{pct}"] / ref[f"winkler_{pct}"]
        row["pinball_vs_cn"] = s["pinball"] / ref["pinball"]
        rows.append(row)
    m = result.metrics
    points_table = {
        "served (weight kept on evidence)": test["forecast"].to_numpy(),
        "network alone": test["forecast_network"].to_numpy(),
        "AutoETS (statsforecast)": bands["AutoETS (statsforecast, native)"]["point"],
    }
    return {
        "key": series.key,
        "ticker": series.ticker,
        "label": series.label,
        "ohlc": hist.open is not None,
        "test": {"start": test["date"].iloc[0], "end": test["date"].iloc[-1], "sessions": len(test)},
        "train_seconds": seconds,
        "point_weight": result.metadata.point_weight,
        "point_weight_best": m.get("point_weight_best"),
        "point_weight_dm_p": m.get("point_weight_dm_p"),
        "points": point_rows(actual, naive, points_table),
        "intervals": rows,
        "online_sigma_mean": float(np.mean(bands[ONLINE]["sigma"])),
    }


def _covers(row: dict) -> bool:
    """Coverage within +-2 pp of nominal at both levels (the issue's target)."""
    return abs(row["coverage_80"] - 0.8) <= 0.02 and abs(row["coverage_95"] - 0.95) <= 0.02


def summary(results: list[dict]) -> dict:
    """Panel means per method and how many series meet the issue's targets."""
    methods = [r["method"] for r in results[0]["intervals"]]
    out = {}
    for name in methods:
        rows = [next(r for r in s["intervals"] if r["method"] == name) for s in results]
        out[name] = {
            "winkler_80_vs_cn": float(np.mean([r["winkler_80_vs_cn"] for r in rows])),
            "winkler_95_vs_cn": float(np.mean([r["winkler_95_vs_cn"] for r in rows])),
            "pinball_vs_cn": float(np.mean([r["pinball_vs_cn"] for r in rows])),
            "coverage_within_2pp": sum(_covers(r) for r in rows),
            "winkler_both_le_0.97": sum(
                r["winkler_80_vs_cn"] <= 0.97 and r["winkler_95_vs_cn"] <= 0.97 for r in rows
            ),
        }
    served = [s["points"][0]["mae_ratio"] for s in results]
    out["served_mae_ratio_max"] = float(max(served))
    out["series"] = len(results)
    return out


def report(results: list[dict]) -> None:
    for s in results:
        test = s["test"]
        print(f"\n{s['label']}: test {test['start']}..{test['end']}, train {s['train_seconds']:.0f} s")
        best, p = s["point_weight_best"], s["point_weight_dm_p"]
        print(f"  weight {s['point_weight']:.2f} (best {best:.2f}, DM p {p:.3f})")
        for r in s["points"]:
            p = r.get("dm_p", float("nan"))
            print(f"  {r['forecast']:36s} MAE/naive {r['mae_ratio']:.4f}  DM p {p:.3f}")
        for r in s["intervals"]:
            cov = f"cov {r['coverage_80']:.3f}/{r['coverage_95']:.3f}"
            wink = f"W {r['winkler_80']:.4g}/{r['winkler_95']:.4g}"
            ratio = f"(x CN {r['winkler_80_vs_cn']:.3f}/{r['winkler_95_vs_cn']:.3f})"
            print(f"  {r['method']:46s} {cov} {wink} {ratio} pinball {r['pinball']:.4g}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 epochs (a smoke run, not a result)")
    parser.add_argument("--series", help="comma-separated keys of the panel to run (default: all)")
    parser.add_argument("--csv", type=Path, help="run the protocol on this daily CSV instead of the panel")
    parser.add_argument("--ticker", default="CSV", help="label of --csv's series")
    parser.add_argument("--output", default="intervals", help="result name under bench/results/")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    work = Path(tempfile.mkdtemp(prefix="bench-intervals-"))
    if args.csv is not None:
        chosen = [Series("csv", args.ticker, args.csv.resolve(), f"{args.ticker} ({args.csv.name})")]
    else:
        chosen = panel(work)
        if args.series:
            keep = set(args.series.split(","))
            chosen = [s for s in chosen if s.key in keep]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results: list[dict] = []
    for series in chosen:
        results.append(evaluate(series, work, args.quick))
        payload = {"quick": args.quick, "started": started, "series": results, "panel": summary(results)}
        save(args.output, payload)
    report(results)
    payload["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print("\npanel:", payload["panel"])
    print("wrote", save(args.output, payload))


if __name__ == "__main__":
    main()
