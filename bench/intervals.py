"""Intervals and proper scores: the served distribution beside static conformal and GARCH(1,1)-t.

Same protocol as bench.accuracy (test = last 500 sessions, validation = the 250 before), one
training run per series with the default settings. All three interval methods sit around the same
served point forecast (the network's log return x the validation-chosen weight):

- served: split-conformal scores normalized by the window's EWMA volatility (lambda 0.94),
  calibrated on validation + the end of training (750 windows, `calibration_sessions`);
- static: split-conformal on |log residuals| (format 1 bundles, the previous default);
- GARCH(1,1) with Student-t errors (`arch`), fitted on every return before the test window and
  rolled over test with fixed parameters (one-step variance from information up to the day before).

Series: PETR4 (../shared/data), the S&P 500 (`arch`'s sample) and a third real series, AAPL
2019-2024 (the `hvsampledata` sample; short: 699 training windows). Rolling origin (PETR4): refit
every `--refit-every` sessions; the GARCH is refitted at each origin.

    .venv/bin/python -m bench.intervals [--quick] [--refit-every 100] [--no-rolling] [--no-third]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from bench.accuracy import diebold_mariano, sp500_csv
from bench.common import PETR4_CSV, save
from training import pipeline
from training.data import SAMPLE_FILE, SAMPLE_PACKAGE
from training.scores import SERVED_QUANTILES, interval_scores, symmetric_quantiles
from training.settings import TrainSettings

TEST, VAL = 500, 250
COVERAGES = (0.8, 0.95)


def train(csv: Path, ticker: str, out: Path, **overrides) -> tuple[pd.DataFrame, object, float]:
    values = {"source": "csv", "csv": csv, "ticker": ticker, "registry": False, "output_dir": out}
    settings = TrainSettings(**{"test_sessions": TEST, "validation_sessions": VAL, **values, **overrides})
    start = time.perf_counter()
    result = pipeline.run(settings)
    return result.test_forecasts, result.metadata, time.perf_counter() - start


def aapl_csv() -> Path:
    """The packaged AAPL sample (real daily closes, offline)."""
    return Path(str(resources.files(SAMPLE_PACKAGE).joinpath(SAMPLE_FILE)))


def log_returns(csv: Path) -> pd.Series:
    frame = pd.read_csv(csv)
    cols = {c.lower(): c for c in frame.columns}
    dates = pd.to_datetime(frame[cols["date"]]).dt.strftime("%Y-%m-%d")
    close = pd.Series(frame[cols["close"]].to_numpy(dtype=np.float64), index=dates)
    return np.log(close).diff().dropna()


def garch_t(returns: pd.Series, target_dates: pd.Series) -> tuple[np.ndarray, object]:
    """One-step GARCH(1,1)-t sigma (log-return units) for each target date; params fitted on the
    returns strictly before the first target date, then fixed."""
    from arch import arch_model

    position = {d: i for i, d in enumerate(returns.index)}
    first = position[target_dates.iloc[0]]
    model = arch_model(100.0 * returns, mean="Zero", vol="GARCH", p=1, q=1, dist="t")
    fitted = model.fit(last_obs=first, disp="off")
    forecast = fitted.forecast(start=first - 1, horizon=1, reindex=False)
    variance = forecast.variance["h.1"]
    prev = [returns.index[position[d] - 1] for d in target_dates]
    sigma = np.sqrt(variance.loc[prev].to_numpy()) / 100.0
    return sigma, fitted


def pct(c: float) -> int:
    return round(c * 100)


def method_bands(frame: pd.DataFrame, meta, returns: pd.Series) -> dict[str, dict]:
    """Bounds per coverage and served quantiles `[n]` for each method, around the served point."""
    point = frame["forecast"].to_numpy()
    dist = meta.distribution
    sigma = frame["sigma"].to_numpy()
    out = {}
    out["EWMA-scaled conformal (served)"] = {
        "bounds": {c: (frame[f"lower_{pct(c)}"].to_numpy(), frame[f"upper_{pct(c)}"].to_numpy())
                   for c in COVERAGES},
        "quantiles": {q: dist.quantile(point[:, None], sigma, q)[:, 0] if q != 0.5 else point
                      for q in SERVED_QUANTILES},
    }  # fmt: skip
    static = {i.coverage: i.log_halfwidth for i in meta.intervals}
    levels, widths = np.array([0.0, *static]), np.array([0.0, *static.values()])
    out["static split conformal"] = {
        "bounds": {c: (frame[f"static_lower_{pct(c)}"].to_numpy(),
                       frame[f"static_upper_{pct(c)}"].to_numpy()) for c in COVERAGES},
        "quantiles": symmetric_quantiles(point, lambda c: np.interp(c, levels, widths)),
    }  # fmt: skip
    g_sigma, fitted = garch_t(returns, frame["date"])
    nu = fitted.params[["nu"]].to_numpy()

    def half(c: float) -> np.ndarray:
        return float(fitted.model.distribution.ppf([(1 + c) / 2], nu)[0]) * g_sigma

    out["GARCH(1,1)-t"] = {
        "bounds": {c: (point * np.exp(-half(c)), point * np.exp(half(c))) for c in COVERAGES},
        "quantiles": symmetric_quantiles(point, half),
    }
    return out


def interval_rows(frame: pd.DataFrame, bands: dict[str, dict]) -> list[dict]:
    actual = frame["actual"].to_numpy()
    scored = {name: interval_scores(actual, b["bounds"], b["quantiles"]) for name, b in bands.items()}
    static = scored["static split conformal"]
    rows = []
    for name, s in scored.items():
        row = {"method": name, **s}
        for c in COVERAGES:
            pct = round(c * 100)
            row[f"winkler_{pct}_vs_static"] = s[f"winkler_{pct}"] / static[f"winkler_{pct}"]
        row["pinball_vs_static"] = s["pinball"] / static["pinball"]
        rows.append(row)
    return rows


def point_rows(frame: pd.DataFrame) -> list[dict]:
    actual, naive = frame["actual"].to_numpy(), frame["naive"].to_numpy()
    naive_mae = float(np.mean(np.abs(naive - actual)))
    rows = []
    for name, col in (("served (weighted toward naive)", "forecast"), ("network alone", "forecast_network")):
        f = frame[col].to_numpy()
        mae = float(np.mean(np.abs(f - actual)))
        if np.allclose(f, naive):
            dm, p = float("nan"), float("nan")
        else:
            dm, p = diebold_mariano(actual, f, naive)
        rows.append({"forecast": name, "mae": mae, "mae_ratio": mae / naive_mae, "dm_stat": dm, "dm_p": p})
    rows.append({"forecast": "naive (tomorrow = today)", "mae": naive_mae, "mae_ratio": 1.0})
    return rows


def evaluate(csv: Path, ticker: str, work: Path, quick: bool) -> dict:
    frame, meta, seconds = train(csv, ticker, work, **({"max_epochs": 3} if quick else {}))
    bands = method_bands(frame, meta, log_returns(csv))
    return {
        "ticker": ticker,
        "test": {"start": frame["date"].iloc[0], "end": frame["date"].iloc[-1], "sessions": len(frame)},
        "train_seconds": seconds,
        "point_weight": meta.point_weight,
        "points": point_rows(frame),
        "intervals": interval_rows(frame, bands),
    }


def rolling(csv: Path, ticker: str, work: Path, every: int, quick: bool) -> dict:
    frame = pd.read_csv(csv, parse_dates=[0])
    dates, returns = frame.iloc[:, 0], log_returns(csv)
    pieces, band_pieces, seconds = [], [], 0.0
    for k, origin in enumerate(range(len(frame) - TEST, len(frame), every)):
        end = dates.iloc[min(origin + every, len(frame)) - 1].date()
        n = min(every, len(frame) - origin)
        f, meta, s = train(csv, ticker, work / f"fold{k}", end=end, test_sessions=n,
                           **({"max_epochs": 3} if quick else {}))  # fmt: skip
        pieces.append(f)
        band_pieces.append(method_bands(f, meta, returns))
        seconds += s
    joined = pd.concat(pieces, ignore_index=True)
    bands = {
        name: {
            "bounds": {c: tuple(np.concatenate([b[name]["bounds"][c][i] for b in band_pieces])
                                for i in (0, 1)) for c in COVERAGES},
            "quantiles": {q: np.concatenate([b[name]["quantiles"][q] for b in band_pieces])
                          for q in SERVED_QUANTILES},
        }
        for name in band_pieces[0]
    }  # fmt: skip
    return {
        "ticker": ticker,
        "refit_every": every,
        "folds": len(pieces),
        "train_seconds": seconds,
        "points": point_rows(joined),
        "intervals": interval_rows(joined, bands),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 epochs (a smoke run, not a result)")
    parser.add_argument("--refit-every", type=int, default=100)
    parser.add_argument("--no-rolling", action="store_true", help="skip the rolling-origin refits")
    parser.add_argument("--no-third", action="store_true", help="skip the third series (AAPL sample)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-intervals-"))
    results: dict = {"quick": args.quick}
    results["petr4"] = evaluate(PETR4_CSV, "PETR4.SA", work / "petr4", args.quick)
    save("intervals", results)
    results["sp500"] = evaluate(sp500_csv(work), "^GSPC", work / "sp500", args.quick)
    save("intervals", results)
    if not args.no_third:
        results["aapl"] = evaluate(aapl_csv(), "AAPL", work / "aapl", args.quick)
        save("intervals", results)
    if not args.no_rolling:
        results["rolling_petr4"] = rolling(
            PETR4_CSV, "PETR4.SA", work / "rolling", args.refit_every, args.quick
        )
    for key in ("petr4", "sp500", "aapl", "rolling_petr4"):
        if key not in results:
            continue
        part = results[key]
        print(f"\n{part['ticker']} ({key}), train {part['train_seconds']:.0f} s")
        for r in part["points"]:
            p = r.get("dm_p", float("nan"))
            print(f"  {r['forecast']:34s} MAE/naive {r['mae_ratio']:.4f}  DM p {p:.3f}")
        for r in part["intervals"]:
            print(
                f"  {r['method']:34s} cov {r['coverage_80']:.3f}/{r['coverage_95']:.3f} "
                f"width {r['width_80']:.4g}/{r['width_95']:.4g} "
                f"W {r['winkler_80']:.4g}/{r['winkler_95']:.4g} "
                f"({r['winkler_80_vs_static']:.3f}x/{r['winkler_95_vs_static']:.3f}x) "
                f"pinball {r['pinball']:.4g}"
            )
    print("wrote", save("intervals", results))


if __name__ == "__main__":
    main()
