"""Side experiment: every interval scale and calibration tried for the online state, around naive.

No training (the served point is naive on most series, and the scale and calibration are what is
compared): for each series of `bench.intervals`' panel, every scale (a sigma for session t from
sessions before t) is combined with every calibration (split-conformal on the 750 windows before
the evaluation window, as the bundle does, or a rolling window of realized scores, with or without
adaptive conformal inference), and scored against statsforecast's Conformal-Naive (rolling 250,
recomputed here: the 250 last |naive errors|, quantiles as statsforecast's conformal_distribution).
Two evaluation windows: the test years of the bench (the last 500 sessions) and, as a check that
the choice is not fitted to them, the 500 sessions before (HAR fitted on what precedes each).

    python -m bench.interval_methods
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import save
from bench.intervals import TEST, panel
from bundle.distribution import conformal_quantile, ewma_sigma
from bundle.har import fit_har, har_variance, range_variance

WINDOW = 60
LEVELS = (0.8, 0.95)


def frame_of(csv: Path) -> pd.DataFrame:
    raw = pd.read_csv(csv).rename(columns=str.lower)
    raw = raw[raw["volume"] > 0] if "volume" in raw else raw
    return raw[["date", "open", "high", "low", "close"]].dropna().reset_index(drop=True)


def proxies(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Daily variance proxies, index j: session j + 1 (from close j to close j + 1)."""
    o, h, lo, c = (np.log(df[k].to_numpy()) for k in ("open", "high", "low", "close"))
    gap = (o[1:] - c[:-1]) ** 2
    hh, ll, cc, oo = h[1:], lo[1:], c[1:], o[1:]
    close = df["close"].to_numpy()
    return {
        "squared return": (cc - c[:-1]) ** 2,
        "Parkinson + gap": (hh - ll) ** 2 / (4 * math.log(2)) + gap,
        "Garman-Klass + gap": range_variance(
            *(df[k].to_numpy()[1:] for k in ("open", "high", "low")), close[1:], close[:-1]
        ),
        "Rogers-Satchell + gap": (hh - cc) * (hh - oo) + (ll - cc) * (ll - oo) + gap,
    }


def yang_zhang(df: pd.DataFrame, n: int = 22) -> np.ndarray:
    """Yang-Zhang variance over the last n sessions (index j: up to session j + 1)."""
    o, h, lo, c = (np.log(df[k].to_numpy()) for k in ("open", "high", "low", "close"))
    over = pd.Series(o[1:] - c[:-1])
    intra = pd.Series(c[1:] - o[1:])
    rs = pd.Series((h[1:] - c[1:]) * (h[1:] - o[1:]) + (lo[1:] - c[1:]) * (lo[1:] - o[1:]))
    k = 0.34 / (1.34 + (n + 1) / (n - 1))
    return (over.rolling(n).var() + k * intra.rolling(n).var() + (1 - k) * rs.rolling(n).mean()).to_numpy()


def scales(df: pd.DataFrame, fit_end: int) -> dict[str, np.ndarray]:
    """sigma[t] for session t from sessions before t; HAR fitted on targets before `fit_end`."""
    close = df["close"].to_numpy()
    n, m = len(close), WINDOW - 1
    out = {}
    windows = np.lib.stride_tricks.sliding_window_view(close, WINDOW)[:-1]  # window ending t - 1
    out["EWMA 0.94 of the window's returns (the bundle's)"] = np.r_[
        np.full(WINDOW, np.nan), ewma_sigma(windows)
    ]
    v = proxies(df)
    r2 = v["squared return"]
    target = r2[m:]
    train = slice(0, fit_end - 1 - m)
    for name, proxy in v.items():
        wins = np.lib.stride_tricks.sliding_window_view(proxy, m)[:-1]  # predicts session index + m + 1
        for label, its in (("OLS", 0), ("WLS", 3)):
            if name not in {"Garman-Klass + gap", "squared return"} and label == "OLS":
                continue
            coef = fit_har(wins[train], target[train], iterations=its)
            sig = np.sqrt(np.maximum(har_variance(coef, wins), 1e-12))
            out[f"HAR on {name}, {label}"] = np.r_[np.full(m + 1, np.nan), sig]
        if name == "Garman-Klass + gap":
            ew = pd.Series(proxy).ewm(alpha=0.06, adjust=False).mean().to_numpy()
            out["EWMA 0.94 of Garman-Klass + gap"] = np.r_[
                np.full(2, np.nan), np.sqrt(ew)
            ]  # ew[j]: to session j + 1
    yz = yang_zhang(df)
    out["Yang-Zhang over 22 sessions"] = np.r_[np.full(2, np.nan), np.sqrt(yz)]
    return {k: s[:n] for k, s in out.items()}


def calibrated(y, point, sigma, start, stop, how: str) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Bands for sessions start..stop-1 from scores realized before each."""
    score = np.abs(np.log(y / point)) / sigma
    out = {c: (np.empty(stop - start), np.empty(stop - start)) for c in LEVELS}
    if how == "split conformal on the 750 before (static)":
        for c in LEVELS:
            q = conformal_quantile(score[start - 750 : start], c)
            out[c] = (
                point[start:stop] * np.exp(-q * sigma[start:stop]),
                point[start:stop] * np.exp(q * sigma[start:stop]),
            )
        return out
    window = 500 if "500" in how else 250
    gamma = 0.01 if "0.01" in how else 0.005 if "ACI" in how else 0.0
    alpha = {c: 1 - c for c in LEVELS}
    for i, t in enumerate(range(start, stop)):
        hist = score[t - window : t]
        for c in LEVELS:
            q = conformal_quantile(hist, 1 - float(np.clip(alpha[c], 1e-4, 0.99)))
            lo, hi = point[t] * math.exp(-q * sigma[t]), point[t] * math.exp(q * sigma[t])
            out[c][0][i], out[c][1][i] = lo, hi
            alpha[c] += gamma * ((1 - c) - float(not lo <= y[t] <= hi))
    return out


CALIBRATIONS = (
    "split conformal on the 750 before (static)",
    "rolling 250",
    "rolling 250 + ACI 0.005",
    "rolling 500 + ACI 0.005",
    "rolling 250 + ACI 0.01",
)


def conformal_naive(y, start, stop) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    e = np.abs(np.diff(y))  # e[j]: |y[j + 1] - y[j]|
    out = {c: (np.empty(stop - start), np.empty(stop - start)) for c in LEVELS}
    for i, t in enumerate(range(start, stop)):
        cs = e[t - 1 - 250 : t - 1]
        both = np.concatenate([-cs, cs])
        for c in LEVELS:
            q = float(np.quantile(both, 1 - (1 - c) / 2))
            out[c][0][i], out[c][1][i] = y[t - 1] - q, y[t - 1] + q
    return out


def scores(y, bands) -> dict[str, float]:
    out = {}
    for c, (lo, hi) in bands.items():
        pct = round(c * 100)
        out[f"coverage_{pct}"] = float(np.mean((y >= lo) & (y <= hi)))
        miss = np.maximum(lo - y, 0) + np.maximum(y - hi, 0)
        out[f"winkler_{pct}"] = float(np.mean(hi - lo + 2 / (1 - c) * miss))
    return out


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-methods-"))
    rows = []
    for series in panel(work):
        full = frame_of(series.csv)
        for period, cut in (("test", 0), ("500 before test", TEST)):
            df = full.iloc[: len(full) - cut].reset_index(drop=True)
            y = df["close"].to_numpy()
            stop, start = len(y), len(y) - TEST
            if start < 1000:  # the AAPL 2019-24 sample is too short for the earlier window
                continue
            point = np.r_[np.nan, y[:-1]]
            ref = scores(y[start:stop], conformal_naive(y, start, stop))
            for scale, sigma in scales(df, start).items():
                for how in CALIBRATIONS:
                    s = scores(y[start:stop], calibrated(y, point, sigma, start, stop, how))
                    rows.append(
                        {
                            "series": series.key,
                            "period": period,
                            "scale": scale,
                            "calibration": how,
                            **s,
                            "winkler_80_vs_cn": s["winkler_80"] / ref["winkler_80"],
                            "winkler_95_vs_cn": s["winkler_95"] / ref["winkler_95"],
                        }
                    )
        print(series.key, flush=True)
    table = pd.DataFrame(rows)
    table["covers"] = ((table.coverage_80 - 0.8).abs() <= 0.02) & ((table.coverage_95 - 0.95).abs() <= 0.02)
    summary = (
        table.groupby(["period", "scale", "calibration"])
        .agg(
            series=("series", "count"),
            winkler_80_vs_cn=("winkler_80_vs_cn", "mean"),
            winkler_95_vs_cn=("winkler_95_vs_cn", "mean"),
            covered=("covers", "sum"),
        )
        .reset_index()
    )
    print(summary.sort_values(["period", "winkler_95_vs_cn"]).to_string())
    print("wrote", save("interval_methods", {"rows": rows, "summary": summary.to_dict("records")}))


if __name__ == "__main__":
    main()
