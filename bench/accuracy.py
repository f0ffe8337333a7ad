"""Accuracy against honest baselines, one step ahead, no leakage, on PETR4 and on S&P 500.

Protocol: the last 500 sessions are test (PETR4: 2023-11-10..2025-11-07, so training data ends
before 2023-10), the 250 before them validation (early stopping and conformal calibration), the rest
training. Every forecast uses only closes published before the day it forecasts.

    .venv/bin/python -m bench.accuracy [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench.common import PETR4_CSV, save
from training import pipeline
from training.settings import TrainSettings

TEST, VAL = 500, 250


def diebold_mariano(actual: np.ndarray, model: np.ndarray, baseline: np.ndarray) -> tuple[float, float]:
    """DM test on absolute-error loss, h = 1, with the Harvey-Leybourne-Newbold correction.
    Negative statistic: the model's errors are smaller. Returns (statistic, two-sided p)."""
    d = np.abs(actual - model) - np.abs(actual - baseline)
    n = len(d)
    dm = d.mean() / np.sqrt(d.var(ddof=0) / n) * np.sqrt((n - 1) / n)
    return float(dm), float(2 * stats.t.sf(abs(dm), df=n - 1))


def sp500_csv(directory: Path) -> Path:
    from arch.data import sp500

    frame = sp500.load().reset_index()[["Date", "Close", "Volume"]]
    path = directory / "sp500.csv"
    frame.to_csv(path, index=False)
    return path


def run(csv: Path, ticker: str, out: Path, **overrides) -> tuple[pd.DataFrame, float, dict]:
    values = {
        "source": "csv",
        "csv": csv,
        "ticker": ticker,
        "registry": False,
        "output_dir": out,
        "test_sessions": TEST,
        "validation_sessions": VAL,
    }
    settings = TrainSettings(**{**values, **overrides})
    start = time.perf_counter()
    result = pipeline.run(settings)
    return result.test_forecasts, time.perf_counter() - start, result.metrics


def row(
    name: str, f: pd.DataFrame, forecast: np.ndarray, seconds: float | None = None, intervals: bool = False
) -> dict:
    """Metrics of `forecast`; coverage only when `f` holds that forecast's own intervals."""
    actual, naive = f["actual"].to_numpy(), f["naive"].to_numpy()
    err, naive_err = forecast - actual, naive - actual
    mae, naive_mae = np.mean(np.abs(err)), np.mean(np.abs(naive_err))
    dm, p = diebold_mariano(actual, forecast, naive) if name != "naive" else (float("nan"), float("nan"))
    out = {
        "forecast": name,
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": float(np.mean(np.abs(err) / actual) * 100),
        "mae_ratio": mae / naive_mae,
        "dm_stat": dm,
        "dm_p": p,
        "train_seconds": seconds,
    }
    for pct in (80, 95) if intervals else ():
        if f"lower_{pct}" in f:
            out[f"coverage_{pct}"] = float(
                np.mean((actual >= f[f"lower_{pct}"]) & (actual <= f[f"upper_{pct}"]))
            )
    return out


def evaluate(csv: Path, ticker: str, work: Path, quick: bool, seed_faithful: bool) -> dict:
    epochs = {"max_epochs": 3} if quick else {}
    base, seconds, _ = run(csv, ticker, work / "default", **epochs)
    rows = [row("naive (tomorrow = today)", base, base["naive"].to_numpy())]
    # Drift: the naive forecast times the mean daily return of the training part.
    frame = pd.read_csv(csv)
    price = frame[next(c for c in frame.columns if c.lower() == "close")].to_numpy()
    mu = float(np.mean(np.diff(np.log(price[: -(TEST + VAL)]))))
    rows.append(row("drift (naive x mean train return)", base, base["naive"].to_numpy() * np.exp(mu)))
    if seed_faithful:
        seed_epochs = {"max_epochs": 3} if quick else {"max_epochs": 50, "patience": 50}
        seed_f, seed_s, _ = run(csv, ticker, work / "seed", target="level", **seed_epochs)
        rows.append(
            row(
                "seed-faithful LSTM (level, MinMax, 50 epochs)", seed_f, seed_f["forecast"].to_numpy(), seed_s
            )
        )
    rows.append(row("LSTM default (log-return target)", base, base["forecast"].to_numpy(), seconds, True))
    rows.append(row("LSTM default, int8 ONNX", base, base["forecast_int8"].to_numpy()))
    members, total = [base["forecast"].to_numpy()], seconds
    for seed in (1, 2, 3, 4):
        f, s, _ = run(csv, ticker, work / f"seed{seed}", seed=seed, **epochs)
        members.append(f["forecast"].to_numpy())
        total += s
    rows.append(row("ensemble of 5 seeds (log-return)", base, np.mean(members, axis=0), total))
    return {
        "ticker": ticker,
        "test": {"start": base["date"].iloc[0], "end": base["date"].iloc[-1], "sessions": len(base)},
        "rows": rows,
    }


def rolling_origin(csv: Path, ticker: str, work: Path, every: int, quick: bool) -> dict:
    """Refit every `every` sessions across the test period: each refit trains on everything before
    its origin and forecasts the next `every` sessions one step ahead (the retraining cadence)."""
    frame = pd.read_csv(csv, parse_dates=[0])
    dates = frame.iloc[:, 0]
    pieces, seconds = [], 0.0
    for k, origin in enumerate(range(len(frame) - TEST, len(frame), every)):
        end = dates.iloc[min(origin + every, len(frame)) - 1].date()
        n = min(every, len(frame) - origin)
        settings = {"end": end, "test_sessions": n, "validation_sessions": VAL}
        f, s, _ = run(csv, ticker, work / f"fold{k}", **settings, **({"max_epochs": 3} if quick else {}))
        pieces.append(f)
        seconds += s
    joined = pd.concat(pieces, ignore_index=True)
    return {
        "ticker": ticker,
        "refit_every": every,
        "folds": len(pieces),
        "model": row("LSTM default, refit every k", joined, joined["forecast"].to_numpy(), seconds, True),
        "naive": row("naive (tomorrow = today)", joined, joined["naive"].to_numpy()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 epochs everywhere (a smoke run, not a result)"
    )
    parser.add_argument("--refit-every", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-accuracy-"))
    sp500 = sp500_csv(work)
    results: dict = {"quick": args.quick}
    results["petr4"] = evaluate(PETR4_CSV, "PETR4.SA", work / "petr4", args.quick, seed_faithful=True)
    save("accuracy", results)
    results["sp500"] = evaluate(sp500, "^GSPC", work / "sp500", args.quick, seed_faithful=True)
    save("accuracy", results)
    results["rolling_petr4"] = rolling_origin(
        PETR4_CSV, "PETR4.SA", work / "rolling", args.refit_every, args.quick
    )
    for key in ("petr4", "sp500"):
        print(f"\n{results[key]['ticker']}: test {results[key]['test']}")
        for r in results[key]["rows"]:
            print(
                f"  {r['forecast']:48s} MAE {r['mae']:9.4f}  ratio {r['mae_ratio']:.4f}  DM p {r['dm_p']:.3f}"
            )
    roll = results["rolling_petr4"]
    print(
        f"\nrolling origin PETR4, refit every {roll['refit_every']}: ratio {roll['model']['mae_ratio']:.4f}"
    )
    print("wrote", save("accuracy", results))


if __name__ == "__main__":
    main()
