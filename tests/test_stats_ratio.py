"""judge.stats: the cluster bootstrap of a ratio of sums, and Wilson's score interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from judge.stats import bootstrap_mean_ci, bootstrap_ratio_ci, wilson_ci


def test_ratio_estimate_and_two_group_distribution_by_hand() -> None:
    # group a: num 2 + 4 over den 1 + 1; group b: num 9 over den 3 -> estimate 15 / 5 = 3
    ci = bootstrap_ratio_ci([2, 4, 9], [1, 1, 3], ["a", "a", "b"], n_resamples=4000, seed=1)
    assert ci.estimate == pytest.approx(3.0) and ci.n == 3 and ci.n_clusters == 2
    # a resample of 2 groups is (a, a) -> 12/4 = 3 ... every resample is 3: (a,b) 15/5, (b,b) 18/6
    assert (ci.low, ci.high) == (pytest.approx(3.0), pytest.approx(3.0))
    # now group b's ratio differs: a 6/2 = 3, b 9/1 = 9; resamples: (a,a) 3, (a,b) 15/3 = 5, (b,b) 9
    ci = bootstrap_ratio_ci([2, 4, 9], [1, 1, 1], ["a", "a", "b"], n_resamples=4000, seed=1)
    assert ci.estimate == pytest.approx(5.0)
    # P(3) = P(9) = 1/4 > 2.5%: the 95% interval is exactly [3, 9]
    assert (ci.low, ci.high) == (pytest.approx(3.0), pytest.approx(9.0))


def test_ratio_with_unit_denominators_is_the_mean_bootstrap() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    groups = np.repeat(np.arange(20), 2)
    ratio = bootstrap_ratio_ci(x, np.ones_like(x), groups, n_resamples=500, seed=7)
    mean = bootstrap_mean_ci(x, groups, n_resamples=500, seed=7)
    assert ratio.estimate == pytest.approx(mean.estimate)
    assert (ratio.low, ratio.high) == (pytest.approx(mean.low), pytest.approx(mean.high))


def test_ratio_token_weighted_mean_against_a_direct_loop() -> None:
    """KL mass / tokens per question: the same draws as a hand-written loop give the same interval."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(5, 50, size=12).astype(float)
    mass = tokens * rng.gamma(1.0, 0.1, size=12)
    groups = np.repeat(np.arange(6), 2)
    ci = bootstrap_ratio_ci(mass, tokens, groups, n_resamples=300, seed=11)
    g_mass = np.bincount(groups, weights=mass)
    g_tok = np.bincount(groups, weights=tokens)
    draws = np.random.default_rng(11).integers(0, 6, size=(300, 6))
    stats = np.array([g_mass[d].sum() / g_tok[d].sum() for d in draws])
    low, high = np.quantile(stats, [0.025, 0.975])
    assert ci.estimate == pytest.approx(mass.sum() / tokens.sum())
    assert (ci.low, ci.high) == (pytest.approx(low), pytest.approx(high))


def test_ratio_degenerate() -> None:
    assert math.isnan(bootstrap_ratio_ci([], []).estimate)
    one = bootstrap_ratio_ci([1.0, 3.0], [2.0, 2.0], ["q", "q"])
    assert one.estimate == pytest.approx(1.0) and math.isnan(one.low) and "fewer than 2" in one.note
    empty = bootstrap_ratio_ci([1.0, 1.0], [0.0, 0.0])  # units with nothing in them are dropped
    assert empty.n == 0 and math.isnan(empty.estimate) and empty.note == "no data"
    nan_dropped = bootstrap_ratio_ci([1.0, float("nan"), 3.0], [1.0, 1.0, 1.0])
    assert nan_dropped.n == 2 and nan_dropped.estimate == pytest.approx(2.0)
    with pytest.raises(ValueError):
        bootstrap_ratio_ci([1.0], [1.0, 2.0])


@pytest.mark.parametrize("k, n", [(0, 24), (9, 24), (17, 24), (24, 24), (1, 3), (50, 80)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ci = wilson_ci(k, n)
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert ci.estimate == pytest.approx(k / n)
    assert (ci.low, ci.high) == (pytest.approx(ref.low, abs=1e-12), pytest.approx(ref.high, abs=1e-12))


def test_wilson_by_hand_and_degenerate() -> None:
    # k = n = 4, z = 1.959964: centre (4 + z^2/2) / (4 + z^2), half z sqrt(z^2/4) / (4 + z^2)
    z = sps.norm.ppf(0.975)
    ci = wilson_ci(4, 4)
    assert ci.low == pytest.approx((4 + z * z / 2 - z * z / 2) / (4 + z * z))
    assert ci.high == pytest.approx(1.0)
    assert math.isnan(wilson_ci(0, 0).estimate)
    with pytest.raises(ValueError):
        wilson_ci(5, 4)
