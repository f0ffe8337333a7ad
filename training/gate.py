"""The promotion gate: a pure decision, so that its rules are testable without a registry."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: tuple[str, ...]

    def as_tags(self) -> dict[str, str]:
        return {
            "gate.decision": "promoted" if self.promote else "rejected",
            "gate.reasons": "; ".join(self.reasons),
        }


def decide(
    mae: float,
    naive_mae: float,
    margin: float,
    champion_mae: float | None,
    *,
    winkler: dict[float, float] | None = None,
    champion_winkler: dict[float, float] | None = None,
) -> GateDecision:
    """Promote only if the new model is within `margin` of naive and beats the champion.

    Both MAEs are measured on the same recent window (the new run's test part), so the
    comparison is fair even if the champion was trained on older data.
    """
    reasons, ok = [], True
    limit = naive_mae * (1.0 + margin)
    if mae <= limit:
        reasons.append(f"MAE {mae:.4f} <= naive {naive_mae:.4f} x (1 + {margin:g}) = {limit:.4f}")
    else:
        ok = False
        reasons.append(f"MAE {mae:.4f} > naive {naive_mae:.4f} x (1 + {margin:g}) = {limit:.4f}")
    if champion_mae is None:
        reasons.append("no current champion")
    elif mae < champion_mae:
        reasons.append(f"MAE {mae:.4f} < champion's {champion_mae:.4f} on the same window")
    else:
        ok = False
        reasons.append(f"MAE {mae:.4f} does not beat champion's {champion_mae:.4f} on the same window")
    interval_ok, interval_reasons = _intervals(winkler, champion_winkler)
    return GateDecision(ok and interval_ok, tuple(reasons + interval_reasons))


def _intervals(
    winkler: dict[float, float] | None, champion: dict[float, float] | None
) -> tuple[bool, list[str]]:
    """Refuse a candidate whose Winkler interval score is worse than the champion's at any level
    both serve, on the same window: a sharper point forecast must not buy worse intervals."""
    if not winkler or not champion:
        return True, []
    ok, reasons = True, []
    for level in sorted(set(winkler) & set(champion)):
        mine, theirs = winkler[level], champion[level]
        worse = mine > theirs
        ok &= not worse
        verb = "is worse than" if worse else "is no worse than"
        reasons.append(f"Winkler {level:.0%} {mine:.4f} {verb} champion's {theirs:.4f} on the same window")
    return ok, reasons
