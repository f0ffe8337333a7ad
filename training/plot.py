"""PNG of forecast vs actual over the test period, with the served bands and the static reference."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_forecast(
    path: Path,
    dates: pd.DatetimeIndex,
    actual: np.ndarray,
    forecast: np.ndarray,
    naive: np.ndarray,
    bands: dict[float, tuple[np.ndarray, np.ndarray]],
    title: str,
    static: dict[float, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Path:
    """`bands`: the served (volatility-adaptive) bounds per coverage; `static`: the reference."""
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=110)
    for coverage, alpha in zip(sorted(bands, reverse=True), (0.15, 0.3), strict=False):
        ax.fill_between(
            dates, *bands[coverage], alpha=alpha, color="tab:blue", linewidth=0,
            label=f"{coverage:.0%} interval (EWMA-scaled conformal)",
        )  # fmt: skip
    if static:
        top = max(static)
        for k, bound in enumerate(static[top]):
            ax.plot(dates, bound, color="tab:gray", linewidth=0.7, linestyle=":",
                    label=f"{top:.0%} static conformal" if k == 0 else None)  # fmt: skip
    ax.plot(dates, actual, color="black", linewidth=1.0, label="actual close")
    ax.plot(dates, forecast, color="tab:blue", linewidth=1.0, label="LSTM D+1 forecast")
    ax.plot(
        dates,
        naive,
        color="tab:orange",
        linewidth=0.8,
        linestyle="--",
        label="naive (tomorrow = today)",
    )
    ax.set_title(title)
    ax.set_ylabel("close")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
