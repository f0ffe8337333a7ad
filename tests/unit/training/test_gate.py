from training.gate import decide


def test_first_model_within_naive_margin_is_promoted():
    d = decide(mae=1.02, naive_mae=1.0, margin=0.05, champion_mae=None)
    assert d.promote and "no current champion" in d.reasons
    assert d.as_tags()["gate.decision"] == "promoted"


def test_worse_than_naive_beyond_margin_is_refused():
    d = decide(mae=1.06, naive_mae=1.0, margin=0.05, champion_mae=None)
    assert not d.promote and "1.0600 > naive" in d.reasons[0]


def test_must_strictly_beat_the_champion():
    assert decide(0.99, 1.0, 0.05, champion_mae=0.98).promote is False
    assert decide(0.98, 1.0, 0.05, champion_mae=0.98).promote is False
    assert decide(0.97, 1.0, 0.05, champion_mae=0.98).promote is True


def test_reasons_are_stored_as_tags():
    tags = decide(0.99, 1.0, 0.05, champion_mae=0.98).as_tags()
    assert tags["gate.decision"] == "rejected"
    assert "does not beat champion's 0.9800" in tags["gate.reasons"]
