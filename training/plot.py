"""PNG of forecast vs actual over the test period, with the served bands and the static reference."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from bundle.outputs import MEAN, Output, level_label


def plot_forecast(path: Path, forecasts: pd.DataFrame, declared: tuple[Output, ...], title: str) -> Path:
    """`forecasts` is the test table: date, actual, naive, a column per declared output (the served,
    volatility-adaptive bands) and `static_lower_XX` / `static_upper_XX` (the static reference)."""
    dates = pd.to_datetime(forecasts["date"])
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=110)
    bands = sorted((o for o in declared if o.kind == "lower"), key=lambda o: -(o.coverage or 0))
    for lower, alpha in zip(bands, (0.15, 0.3, 0.45), strict=False):
        upper = next(o for o in declared if o.kind == "upper" and o.coverage == lower.coverage)
        label = f"{lower.coverage:.0%} interval (EWMA-scaled conformal)"
        ax.fill_between(dates, forecasts[lower.name], forecasts[upper.name], alpha=alpha, color="tab:blue",
                        linewidth=0, label=label)  # fmt: skip
    if bands:  # the widest static interval, dotted, for comparison
        label = level_label(bands[0].coverage)
        for k, side in enumerate(("lower", "upper")):
            column = f"static_{side}_{label}"
            if column in forecasts:
                ax.plot(dates, forecasts[column], color="tab:gray", linewidth=0.7, linestyle=":",
                        label=f"{bands[0].coverage:.0%} static conformal" if k == 0 else None)  # fmt: skip
    ax.plot(dates, forecasts["actual"], color="black", linewidth=1.0, label="actual close")
    ax.plot(dates, forecasts[MEAN], color="tab:blue", linewidth=1.0, label="D+1 forecast")
    ax.plot(dates, forecasts["naive"], color="tab:orange", linewidth=0.8, linestyle="--",
            label="naive (tomorrow = today)")  # fmt: skip
    ax.set_title(title)
    ax.set_ylabel("close")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
