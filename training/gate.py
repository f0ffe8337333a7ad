"""The promotion gate: a pure decision, so that its rules are testable without a registry.

Three outcomes, each its own tag value: `promoted`, `rejected` (the candidate failed a rule) and
`champion_unevaluable` (a champion exists but could not be re-scored on the candidate's window).
The last one does not promote: a model nobody could compare must not replace the one serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["promoted", "rejected", "champion_unevaluable"]


@dataclass(frozen=True)
class ChampionScore:
    """The current champion re-scored on the candidate's test window, or why it could not be."""

    version: str
    mae: float | None = None
    error: str | None = None
    winkler: dict[float, float] | None = None  # its Winkler interval score per level, same window


@dataclass(frozen=True)
class GateDecision:
    outcome: Outcome
    reasons: tuple[str, ...]

    @property
    def promote(self) -> bool:
        return self.outcome == "promoted"

    def as_tags(self) -> dict[str, str]:
        return {"gate.decision": self.outcome, "gate.reasons": "; ".join(self.reasons)}


def decide(
    mae: float,
    naive_mae: float,
    margin: float,
    champion: ChampionScore | None,
    *,
    winkler: dict[float, float] | None = None,
) -> GateDecision:
    """Promote only if the new model is within `margin` of naive and beats the champion.

    Both MAEs are measured on the same recent window (the new run's test part), so the
    comparison is fair even if the champion was trained on older data.
    """
    reasons, outcome = [], "promoted"
    limit = naive_mae * (1.0 + margin)
    if mae <= limit:
        reasons.append(f"MAE {mae:.4f} <= naive {naive_mae:.4f} x (1 + {margin:g}) = {limit:.4f}")
    else:
        outcome = "rejected"
        reasons.append(f"MAE {mae:.4f} > naive {naive_mae:.4f} x (1 + {margin:g}) = {limit:.4f}")
    if champion is None:
        reasons.append("no current champion")
    elif champion.mae is None:
        outcome = "rejected" if outcome == "rejected" else "champion_unevaluable"
        reasons.append(f"champion version {champion.version} cannot be evaluated on this window "
                       f"({champion.error}): not replacing a model that cannot be compared")  # fmt: skip
    elif mae < champion.mae:
        reasons.append(f"MAE {mae:.4f} < champion's {champion.mae:.4f} on the same window")
    else:
        outcome = "rejected"
        reasons.append(f"MAE {mae:.4f} does not beat champion's {champion.mae:.4f} on the same window")
    interval_ok, interval_reasons = _intervals(winkler, champion.winkler if champion else None)
    if not interval_ok and outcome == "promoted":
        outcome = "rejected"
    return GateDecision(outcome, tuple(reasons + interval_reasons))


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
