"""The final summary table printed at the end of a run."""

from __future__ import annotations

from collections.abc import Iterable


def table(rows: Iterable[tuple[str, ...]], header: tuple[str, ...]) -> str:
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "+".join("-" * (w + 2) for w in widths)
    def fmt(cells):
        return " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    return "\n".join([fmt(header), line, *(fmt(r) for r in rows)])


def summary(result) -> str:
    m, md = result.metrics, result.metadata
    split = md.splits["test"]
    out = [
        f"\n== {md.model_name}: {md.ticker}, D+1 close ({md.features.target} target, window {md.features.window})",
        f"data: {md.source}; {md.data_start}..{md.data_end}; dropped frozen sessions: {result.dropped_frozen}",
        f"test: {split.start}..{split.end} ({split.sessions} sessions, one step ahead from actual closes)\n",
        table(
            [
                ("LSTM (onnx fp32)", f"{m['mae']:.4f}", f"{m['rmse']:.4f}", f"{m['mape']:.3f}", f"{m['mae_ratio']:.4f}"),
                ("LSTM (onnx int8)", f"{m['int8_mae']:.4f}", f"{m['int8_rmse']:.4f}", f"{m['int8_mape']:.3f}",
                 f"{m['int8_mae'] / m['naive_mae']:.4f}"),
                ("naive (tomorrow = today)", f"{m['naive_mae']:.4f}", f"{m['naive_rmse']:.4f}", f"{m['naive_mape']:.3f}", "1.0000"),
            ],
            ("forecast", "MAE", "RMSE", "MAPE %", "MAE / naive"),
        ),
        "",
        table(
            [(f"{i.coverage:.0%}", f"±{i.log_halfwidth * 100:.2f}%", f"{i.test_coverage:.1%}") for i in md.intervals],
            ("conformal interval", "half-width", "test coverage"),
        ),
        f"\nONNX parity max |torch - onnx| = {result.parity:.2e} (scaled units); int8 MAE delta {m['int8_mae'] - m['mae']:+.4f}",
        f"gate: {'PROMOTED' if result.decision.promote else 'not promoted'}: {'; '.join(result.decision.reasons)}",
        f"registered: {result.registered or 'no (--no-registry)'}",
        f"bundle: {result.bundle_path}",
    ]
    return "\n".join(out)
