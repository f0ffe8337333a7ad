import dataclasses

import pytest

from training.gate import ChampionScore, decide


def test_first_model_within_naive_margin_is_promoted():
    d = decide(mae=1.02, naive_mae=1.0, margin=0.05, champion=None)
    assert d.promote and "no current champion" in d.reasons
    assert d.as_tags()["gate.decision"] == "promoted"


def test_worse_than_naive_beyond_margin_is_refused():
    d = decide(mae=1.06, naive_mae=1.0, margin=0.05, champion=None)
    assert not d.promote and "1.0600 > naive" in d.reasons[0]


def test_must_strictly_beat_the_champion():
    def score(mae):
        return ChampionScore("1", mae=mae)

    assert decide(0.99, 1.0, 0.05, score(0.98)).promote is False
    assert decide(0.98, 1.0, 0.05, score(0.98)).promote is False
    assert decide(0.97, 1.0, 0.05, score(0.98)).promote is True


def test_reasons_are_stored_as_tags():
    tags = decide(0.99, 1.0, 0.05, ChampionScore("1", mae=0.98)).as_tags()
    assert tags["gate.decision"] == "rejected"
    assert "does not beat champion's 0.9800" in tags["gate.reasons"]


def test_a_champion_that_cannot_be_evaluated_is_its_own_decision_and_blocks_promotion():
    d = decide(0.9, 1.0, 0.05, ChampionScore("7", error="cannot fetch its bundle: sha256 mismatch"))
    assert not d.promote and d.outcome == "champion_unevaluable"
    assert d.as_tags()["gate.decision"] == "champion_unevaluable"
    assert "champion version 7 cannot be evaluated" in d.reasons[1] and "sha256 mismatch" in d.reasons[1]
    assert "no current champion" not in d.as_tags()["gate.reasons"]


def test_a_candidate_worse_than_naive_stays_rejected_whatever_the_champion():
    d = decide(1.2, 1.0, 0.05, ChampionScore("7", error="gone"))
    assert d.outcome == "rejected"


def test_exactly_at_naive_times_one_plus_margin_is_within_the_margin():
    """`within margin` includes the limit: 1.25 = 1.0 x (1 + 0.25), exactly representable."""
    at_limit = decide(mae=1.25, naive_mae=1.0, margin=0.25, champion=None)
    assert at_limit.promote and "1.2500 <= naive" in at_limit.reasons[0]
    assert not decide(mae=1.2500001, naive_mae=1.0, margin=0.25, champion=None).promote


def test_sub_unit_naive_mae_scales_the_limit():
    """PETR4's naive MAE is ~R$ 0.40: the limit is 0.40 x 1.05 = 0.42, not 1.05."""
    assert decide(mae=0.419, naive_mae=0.4, margin=0.05, champion=None).promote
    assert not decide(mae=0.43, naive_mae=0.4, margin=0.05, champion=None).promote
    assert not decide(mae=0.8, naive_mae=0.4, margin=0.05, champion=None).promote


def test_rejection_by_naive_holds_even_when_the_champion_is_beaten():
    d = decide(mae=1.2, naive_mae=1.0, margin=0.05, champion=ChampionScore("1", mae=2.0))
    assert not d.promote
    assert d.as_tags() == {"gate.decision": "rejected", "gate.reasons": "; ".join(d.reasons)}
    assert "< champion's 2.0000" in d.reasons[1]


def test_decision_is_immutable():
    d = decide(mae=0.9, naive_mae=1.0, margin=0.05, champion=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.outcome = "promoted"  # type: ignore[misc]


def test_a_champion_score_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ChampionScore("1", mae=1.0).mae = 0.5  # type: ignore[misc]
