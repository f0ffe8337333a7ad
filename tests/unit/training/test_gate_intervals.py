"""The gate also refuses a candidate whose interval (Winkler) score is worse than the champion's."""

from __future__ import annotations

from training.gate import decide


def test_worse_interval_score_is_refused_even_with_a_better_mae():
    d = decide(0.97, 1.0, 0.05, champion_mae=0.98, winkler={0.8: 2.1, 0.95: 3.0},
               champion_winkler={0.8: 2.0, 0.95: 3.5})  # fmt: skip
    assert not d.promote
    assert "Winkler 80% 2.1000 is worse than champion's 2.0000 on the same window" in d.reasons


def test_equal_or_better_interval_score_passes():
    d = decide(0.97, 1.0, 0.05, champion_mae=0.98, winkler={0.8: 2.0, 0.95: 3.0},
               champion_winkler={0.8: 2.0, 0.95: 3.5})  # fmt: skip
    assert d.promote and any("no worse than" in r for r in d.reasons)


def test_no_champion_scores_means_no_interval_condition():
    assert decide(0.97, 1.0, 0.05, None, winkler={0.8: 9.0}, champion_winkler=None).promote
    assert decide(0.97, 1.0, 0.05, 0.98).promote  # the old call still works
