"""The point forecast falls back to naive when the network has no skill, and keeps real skill."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bundle.runtime import shrink
from training.calibration import choose_point_weight, point_weight
from training.evidence import diebold_mariano_less, newey_west_lag


def walk(n: int, seed: int, ar: float = 0.0) -> np.ndarray:
    """Closes whose log returns are AR(1) with coefficient `ar` (0: a pure random walk)."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0, 0.02, n)
    r = np.empty(n)
    r[0] = eps[0]
    for t in range(1, n):
        r[t] = ar * r[t - 1] + eps[t]
    return 30.0 * np.exp(np.cumsum(r))


def mae_ratio(actual, forecast, last) -> float:
    return float(np.mean(np.abs(forecast - actual)) / np.mean(np.abs(last - actual)))


def test_on_a_random_walk_the_served_forecast_is_no_worse_than_naive():
    """A network without skill: its predicted log return is noise of the size of a real return."""
    for seed in range(5):
        closes = walk(1501, seed)
        last, actual = closes[:-1], closes[1:]
        noise = np.random.default_rng(100 + seed).normal(0, 0.01, len(last))
        network = last * np.exp(noise)
        val, test = slice(0, 250), slice(250, 750)
        w = point_weight(actual[val], last[val], network[val])
        served = shrink(network[test], last[test], w)
        assert mae_ratio(actual[test], network[test], last[test]) > 1.02  # the raw network loses
        assert mae_ratio(actual[test], served, last[test]) <= 1.005, (seed, w)


def test_real_skill_is_kept():
    """AR(1) returns with coefficient 0.3 and a network that knows it: the weight stays high."""
    closes = walk(1501, 7, ar=0.3)
    r = np.diff(np.log(closes))
    last, actual = closes[1:-1], closes[2:]
    network = last * np.exp(0.3 * r[:-1])
    val, test = slice(0, 250), slice(250, 750)
    w = point_weight(actual[val], last[val], network[val])
    assert w >= 0.6
    assert mae_ratio(actual[test], shrink(network[test], last[test], w), last[test]) < 0.99


def test_weight_zero_is_exactly_naive_and_one_is_the_network():
    last, f = np.array([10.0, 20.0]), np.array([11.0, 19.0])
    np.testing.assert_allclose(shrink(f, last, 0.0), last)
    np.testing.assert_array_equal(shrink(f, last, 1.0), f)


def test_the_weight_is_found_to_the_hundredth_and_never_beyond_one():
    """Actual log returns exactly 0.37 (or 1.5) times the network's: the best weight on a 0.01 grid
    over [0, 1] is 0.37 (and 1.0: the network is never amplified)."""
    last = np.full(6, 100.0)
    r = np.array([0.02, -0.03, 0.01, 0.04, -0.02, -0.01])
    raw = last * np.exp(r)
    assert point_weight(last * np.exp(0.37 * r), last, raw) == 0.37
    assert point_weight(last * np.exp(1.5 * r), last, raw) == 1.0


def test_a_validation_gain_at_noise_level_serves_naive():
    """A network whose log return is pure noise, scaled small: on a validation year the MAE argmin
    still finds a weight above 0 (a noise-level gain), and the served weight is 0 anyway."""
    moved = 0
    for seed in range(20):
        closes = walk(251, seed)
        last, actual = closes[:-1], closes[1:]
        network = last * np.exp(np.random.default_rng(500 + seed).normal(0, 0.002, len(last)))
        chosen = choose_point_weight(actual, last, network)
        moved += chosen.best > 0
        assert chosen.weight == 0.0, (seed, chosen)
        assert chosen.best == 0 or chosen.p_value >= 0.05
    assert moved >= 5  # the argmin alone would have left naive on these seeds


def test_a_large_real_gain_is_significant_and_served():
    closes = walk(1501, 11, ar=0.4)
    r = np.diff(np.log(closes))
    last, actual = closes[1:251], closes[2:252]
    chosen = choose_point_weight(actual, last, last * np.exp(0.4 * r[:250]))
    assert chosen.p_value < 0.01 and chosen.weight == chosen.best >= 0.6


def test_newey_west_counts_autocorrelated_loss_differences():
    """Positively autocorrelated differences carry less information than their count: the HAC
    variance is larger than the i.i.d. one, so the same mean gain is less significant."""
    rng = np.random.default_rng(3)
    e = rng.normal(0, 1, 400)
    d = np.convolve(e, np.ones(5) / 5, mode="same") - 0.08
    iid = diebold_mariano_less(d, np.zeros_like(d), lag=0)
    hac = diebold_mariano_less(d, np.zeros_like(d))
    assert newey_west_lag(250) == 4 and hac > iid
    assert diebold_mariano_less(np.full(5, 1.0), np.full(5, 2.0)) == 0.0  # constant gain: no noise
    assert diebold_mariano_less(np.full(5, 2.0), np.full(5, 1.0)) == 1.0


def test_the_gate_refuses_a_candidate_one_percent_worse_than_naive():
    from training.gate import decide
    from training.settings import TrainSettings

    margin = TrainSettings(source="sample").naive_margin
    assert margin == 0.005
    assert not decide(mae=1.01, naive_mae=1.0, margin=margin, champion=None).promote
    assert decide(mae=1.004, naive_mae=1.0, margin=margin, champion=None).promote


def test_the_diebold_mariano_p_value_is_the_hac_t_test_written_out():
    """The statistic by hand on eight numbers: Bartlett-weighted autocovariances up to the
    automatic lag (2 for n = 8), the HLN factor sqrt((n - 1) / n), a t with n - 1 dof."""
    from scipy import stats

    d = [3.0, -1.0, 4.0, -1.0, 5.0, -9.0, 2.0, -6.0]
    n, lag = len(d), 2
    mean = sum(d) / n
    u = [x - mean for x in d]
    gamma = [sum(u[t] * u[t - k] for t in range(k, n)) / n for k in range(lag + 1)]
    variance = gamma[0] + sum(2 * (1 - k / (lag + 1)) * gamma[k] for k in range(1, lag + 1))
    statistic = mean / math.sqrt(variance / n) * math.sqrt((n - 1) / n)
    expected = stats.t.cdf(statistic, df=n - 1)
    assert newey_west_lag(8) == 2 and newey_west_lag(50) == 3 and newey_west_lag(1000) == 6
    assert diebold_mariano_less(np.array(d), np.zeros(n)) == pytest.approx(expected, rel=1e-12)
    assert diebold_mariano_less(np.zeros(n), -np.array(d)) == pytest.approx(expected, rel=1e-12)
    assert diebold_mariano_less(np.array(d), np.zeros(n), lag=0) != pytest.approx(expected)
    assert diebold_mariano_less(np.zeros(4), np.zeros(4)) == 1.0  # no difference is no evidence
    assert diebold_mariano_less(np.zeros(2), np.ones(2)) == 1.0  # two sessions prove nothing
    assert diebold_mariano_less(np.zeros(3), np.ones(3)) == 0.0
