"""The gate also refuses a candidate whose interval (Winkler) score is worse than the champion's."""

from __future__ import annotations

from training.gate import ChampionScore, decide


def champion(mae=0.98, winkler=None) -> ChampionScore:
    return ChampionScore("1", mae=mae, winkler=winkler)


def test_worse_interval_score_is_refused_even_with_a_better_mae():
    d = decide(0.97, 1.0, 0.05, champion(winkler={0.8: 2.0, 0.95: 3.5}), winkler={0.8: 2.1, 0.95: 3.0})
    assert not d.promote and d.outcome == "rejected"
    assert "Winkler 80% 2.1000 is worse than champion's 2.0000 on the same window" in d.reasons


def test_equal_or_better_interval_score_passes():
    d = decide(0.97, 1.0, 0.05, champion(winkler={0.8: 2.0, 0.95: 3.5}), winkler={0.8: 2.0, 0.95: 3.0})
    assert d.promote and any("no worse than" in r for r in d.reasons)


def test_no_champion_scores_means_no_interval_condition():
    assert decide(0.97, 1.0, 0.05, None, winkler={0.8: 9.0}).promote
    assert decide(0.97, 1.0, 0.05, champion()).promote  # a champion scored without intervals


def test_only_the_levels_both_serve_are_compared():
    """A champion trained with other coverages: its 90% and the candidate's 95% are not comparable
    (and not an error); the common 80% decides."""
    d = decide(0.97, 1.0, 0.05, champion(winkler={0.8: 2.0, 0.9: 1.0}), winkler={0.8: 1.9, 0.95: 9.0})
    assert d.promote
    assert [r for r in d.reasons if r.startswith("Winkler")] == [
        "Winkler 80% 1.9000 is no worse than champion's 2.0000 on the same window"
    ]
