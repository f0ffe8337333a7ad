"""PNG of forecast vs actual over the test period, with the conformal bands."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bundle.schema import ConformalInterval


def plot_forecast(
    path: Path,
    dates: pd.DatetimeIndex,
    actual: np.ndarray,
    forecast: np.ndarray,
    naive: np.ndarray,
    intervals: tuple[ConformalInterval, ...],
    title: str,
) -> Path:
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=110)
    for interval, alpha in zip(sorted(intervals, key=lambda i: -i.coverage), (0.15, 0.3), strict=False):
        ax.fill_between(
            dates,
            *interval.bounds(forecast),
            alpha=alpha,
            color="tab:blue",
            linewidth=0,
            label=f"{interval.coverage:.0%} interval",
        )
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
