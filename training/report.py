"""The final summary table printed at the end of a run."""

from __future__ import annotations

from collections.abc import Iterable

from bundle.outputs import level_label


def table(rows: Iterable[tuple[str, ...]], header: tuple[str, ...]) -> str:
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "+".join("-" * (w + 2) for w in widths)

    def fmt(cells):
        return " | ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([fmt(header), line, *(fmt(r) for r in rows)])


def _row(label: str, mae: float, rmse: float, mape: float, naive_mae: float) -> tuple[str, ...]:
    return (label, f"{mae:.4f}", f"{rmse:.4f}", f"{mape:.3f}", f"{mae / naive_mae:.4f}")


def summary(result) -> str:
    m, md = result.metrics, result.metadata
    test = md.splits["test"]
    naive = m["naive_mae"]
    decision = result.decision
    arch = str(md.hyperparameters.get("architecture", "lstm")).upper()
    rows = [_row(f"{arch} (onnx fp32)", m["mae"], m["rmse"], m["mape"], naive)]
    if "int8_mae" in m:
        rows.append(_row(f"{arch} (onnx int8)", m["int8_mae"], m["int8_rmse"], m["int8_mape"], naive))
    rows.append(_row("naive (tomorrow = today)", naive, m["naive_rmse"], m["naive_mape"], naive))
    models = table(rows, ("forecast", "MAE", "RMSE", "MAPE %", "MAE / naive"))
    int8 = f"int8 MAE delta {m['int8_mae'] - m['mae']:+.4f}" if "int8_mae" in m else "no int8 variant"
    interval_rows = []
    for i in md.intervals:
        pct = level_label(i.coverage)
        for label, pre in (
            ("online recalibrated (served)", "online_"),
            ("bundle calibration (EWMA-conformal; fallback)", ""),
            ("static split conformal (format 1)", "static_"),
        ):
            score = m[f"{pre}winkler_{pct}"]
            interval_rows.append(
                (f"{pct}% {label}", f"{m[f'{pre}coverage_{pct}']:.1%}", f"{m[f'{pre}width_{pct}']:.4f}",
                 f"{score:.4f}", f"{score / m[f'static_winkler_{pct}']:.3f}")
            )  # fmt: skip
    intervals = table(
        interval_rows, ("interval", "test coverage", "mean width", "Winkler", "Winkler / static")
    )
    pinball = (
        f"pinball loss over quantiles 0.025..0.975: online {m['online_pinball']:.4f}, bundle "
        f"{m['pinball']:.4f}, static {m['static_pinball']:.4f}; point weight {md.point_weight:.2f} "
        f"(validation best {m.get('point_weight_best', md.point_weight):.2f}, one-sided DM p "
        f"{m.get('point_weight_dm_p', float('nan')):.3f}; network MAE / naive {m['network_mae_ratio']:.4f})"
    )
    return "\n".join(
        [
            f"\n== {md.model_name}: {md.ticker}, D+1 close "
            f"({md.features.target} target, window {md.features.window})",
            f"data: {md.source}; {md.data_start}..{md.data_end}; "
            f"zero-volume sessions dropped: {result.dropped_frozen}; data warnings: "
            + ("; ".join(result.data_warnings) or "none"),
            f"test: {test.start}..{test.end} ({test.sessions} sessions, one step ahead from actual closes)\n",
            models,
            "",
            intervals,
            pinball,
            f"\nONNX parity max |torch - onnx| = {result.parity:.2e} (scaled units); {int8}",
            f"gate: {decision.outcome}: " + "; ".join(decision.reasons),
            f"registered: {result.registered or 'no (--no-registry)'}",
            f"bundle: {result.bundle_path}",
        ]
    )
