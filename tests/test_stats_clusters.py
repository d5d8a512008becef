"""Tests of judge.stats' cluster-aware pieces: the expanded interval, the ratio bootstrap, the
minimum number of questions, and the question-level exact McNemar test, each against a hand
computation, a brute-force enumeration or an independent re-computation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from judge.stats import (
    MIN_QUESTIONS_FOR_INTERVAL,
    bootstrap_mean_ci,
    bootstrap_ratio_ci,
    clustered_mcnemar_exact,
    flips,
    interval_alpha,
    mcnemar_exact,
    paired_bootstrap_mean_delta,
    win_rate_ci,
)

# --------------------------------------------------------------------------- expanded interval


def test_interval_alpha_by_hand() -> None:
    # G = 8: t_{0.975, 7} = 2.364624 (table); z = sqrt(8/7) * 2.364624 = 2.527889;
    # alpha' = 2 Phi(-2.527889) = erfc(2.527889 / sqrt 2) = 0.011475
    assert interval_alpha(0.05, 8, "expanded") == pytest.approx(0.011475, abs=2e-6)
    assert interval_alpha(0.05, 8, "percentile") == 0.05
    # the expansion fades as G grows: at G = 80 alpha' is close to alpha
    assert 0.044 < interval_alpha(0.05, 80, "expanded") < 0.05
    with pytest.raises(ValueError, match="unknown interval method"):
        interval_alpha(0.05, 8, "bca")  # type: ignore[arg-type]


def test_expanded_interval_is_those_quantiles_of_the_same_resamples() -> None:
    # recompute the resamples independently (same generator, same draws) and take the quantiles at
    # alpha'/2 and 1 - alpha'/2 by hand
    x = np.array([3.0, -1.0, 0.0, 2.0, -4.0, 1.0, 0.0, 5.0, -2.0, 1.0])  # (10,)
    ci = bootstrap_mean_ci(x, n_resamples=3000, seed=4, method="expanded")
    idx = np.random.default_rng(4).integers(0, 10, size=(3000, 10))
    boot = x[idx].mean(axis=1)
    a = interval_alpha(0.05, 10, "expanded")
    assert ci.low == pytest.approx(np.quantile(boot, a / 2), rel=1e-12)
    assert ci.high == pytest.approx(np.quantile(boot, 1 - a / 2), rel=1e-12)
    assert ci.method == "expanded" and ci.estimate == pytest.approx(0.5)
    plain = bootstrap_mean_ci(x, n_resamples=3000, seed=4)
    assert ci.low < plain.low and ci.high > plain.high  # same draws, wider quantiles


def test_minimum_number_of_questions() -> None:
    x = np.arange(14, dtype=float)
    groups = np.repeat(np.arange(7), 2)  # 7 questions x 2 turns
    few = paired_bootstrap_mean_delta(np.zeros(14), x, groups=groups, min_clusters=8,
                                      method="expanded")
    assert few.estimate == pytest.approx(6.5) and math.isnan(few.low) and math.isnan(few.high)
    assert few.n == 14 and few.n_clusters == 7
    assert few.note == ("7 questions < 8: no interval (from so few questions a 95% bootstrap "
                        "interval covers well under 95%)")
    enough = paired_bootstrap_mean_delta(np.zeros(16), np.arange(16, dtype=float),
                                         groups=np.repeat(np.arange(8), 2), min_clusters=8)
    assert enough.note is None and enough.low < enough.estimate < enough.high
    assert MIN_QUESTIONS_FOR_INTERVAL == 8
    w = win_rate_ci(["tie", "compressed"] * 3, [0, 0, 1, 1, 2, 2], min_clusters=8)
    assert w.estimate == pytest.approx(0.75) and math.isnan(w.low)


# --------------------------------------------------------------------------- ratio bootstrap


def test_ratio_bootstrap_by_hand() -> None:
    # question a: items (sum 1, count 3) and (1, 1) -> S=2, C=4; question b: (6, 2).
    # estimate 8/6. A resample of 2 questions is aa (2/4 = .5, prob 1/4), ab or ba (8/6, 1/2),
    # bb (6/2 = 3, 1/4): with 4000 draws the 2.5% and 97.5% quantiles are exactly .5 and 3.
    ci = bootstrap_ratio_ci([1.0, 1.0, 6.0], [3, 1, 2], ["a", "a", "b"], n_resamples=4000)
    assert ci.estimate == pytest.approx(8 / 6)
    assert (ci.low, ci.high) == (0.5, 3.0)
    assert ci.n == 3 and ci.n_clusters == 2
    # dropped: a NaN sum, a zero count
    kept = bootstrap_ratio_ci([1.0, math.nan, 2.0, 5.0], [1, 1, 0, 4])
    assert kept.n == 2 and kept.estimate == pytest.approx(6 / 5)
    with pytest.raises(ValueError, match="counts"):
        bootstrap_ratio_ci([1.0, 2.0], [1])


def test_ratio_bootstrap_equals_token_level_cluster_bootstrap() -> None:
    # per-item (sum, count) with question groups must give exactly the interval of every token's
    # value resampled by question (the same draws, group sums computed from the raw tokens)
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 30, size=24)  # 12 questions x 2 turns
    question = np.repeat(np.arange(12), 2)
    tokens = [rng.gamma(0.5, 0.1, size=n) for n in lengths]
    per_token = bootstrap_mean_ci(np.concatenate(tokens), np.repeat(question, lengths),
                                  seed=2, method="expanded")
    per_item = bootstrap_ratio_ci([t.sum() for t in tokens], lengths, question, seed=2,
                                  method="expanded")
    assert per_item.estimate == pytest.approx(per_token.estimate, rel=1e-12)
    assert per_item.low == pytest.approx(per_token.low, rel=1e-12)
    assert per_item.high == pytest.approx(per_token.high, rel=1e-12)
    # and it is wider than treating tokens as independent, the SE llama.cpp reports
    flat = np.concatenate(tokens)
    token_se = flat.std(ddof=1) / math.sqrt(len(flat))
    q_effect = np.repeat(rng.normal(0, 0.2, size=12), 2)  # a per-question shift: clustered noise
    shifted = [t + abs(e) for t, e in zip(tokens, q_effect)]
    clustered = bootstrap_ratio_ci([t.sum() for t in shifted], lengths, question, seed=2)
    assert (clustered.high - clustered.low) / 3.92 > 2 * token_se


# --------------------------------------------------------------------------- clustered McNemar


def test_clustered_mcnemar_by_hand() -> None:
    # d = [2, 1]: S* in {3, 1, -1, -3}, each 1/4; observed 3 -> p = P(|S*| >= 3) = 1/2
    assert clustered_mcnemar_exact([2, 1]) == pytest.approx(0.5)
    # d = [2, 2, 1]: S* = +-2 +-2 +-1 -> {5, 3, 1, -1, 1, -1, -3, -5}; observed 5 -> 2/8
    assert clustered_mcnemar_exact([2, 2, 1]) == pytest.approx(0.25)
    # the same 5 c->i flips as 5 independent items: item-level exact McNemar 2/32
    assert mcnemar_exact(5, 0) == pytest.approx(0.0625)
    # signs and zeros: d = [-2, 0, 1] is S = -1; S* in {3, 1, -1, -3}: P(|S*| >= 1) = 1
    assert clustered_mcnemar_exact([-2, 0, 1]) == 1.0
    assert clustered_mcnemar_exact([]) == 1.0 and clustered_mcnemar_exact([0, 0]) == 1.0


def test_clustered_mcnemar_against_brute_force_enumeration() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        d = rng.integers(-2, 3, size=int(rng.integers(1, 11))).tolist()
        observed = abs(sum(d))
        signs = itertools.product((1, -1), repeat=len(d))
        hits = sum(abs(sum(e * x for e, x in zip(s, d))) >= observed for s in signs)
        assert clustered_mcnemar_exact(d) == pytest.approx(hits / 2 ** len(d), rel=1e-12), d


def test_clustered_mcnemar_with_singletons_is_exact_mcnemar() -> None:
    for b in range(0, 13):
        for c in range(0, 13):
            assert clustered_mcnemar_exact([1] * b + [-1] * c) == pytest.approx(
                mcnemar_exact(b, c), rel=1e-12), (b, c)
            if b + c:
                assert mcnemar_exact(b, c) == pytest.approx(
                    sps.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_flips_grouped_by_question() -> None:
    # q1: both turns correct -> incorrect; q2: turn 1 c->i, turn 2 i->c; q3: turn 1 c->i;
    # q4: both stay correct; q5: turn 2 has no baseline verdict
    base = [True, True, True, False, True, True, True, None]
    comp = [False, False, False, True, False, True, True, True]
    groups = ["q1", "q1", "q2", "q2", "q3", "q4", "q4", "q5"]
    f = flips(base, comp, groups)
    assert (f.n, f.n_dropped, f.correct_to_incorrect, f.incorrect_to_correct) == (7, 1, 4, 1)
    assert f.n_clusters == 4  # q5's only pair was dropped
    # per question d = [2, 0, 1, 0]: S = 3; S* in {3, 1, -1, -3} -> p = 1/2
    assert f.mcnemar_p == pytest.approx(0.5)
    assert f.mcnemar_items_p == pytest.approx(mcnemar_exact(4, 1))  # 12/32 = 0.375
    assert flips(base, comp).mcnemar_p == pytest.approx(0.375) and flips(base, comp).n_clusters is None
    with pytest.raises(ValueError, match="groups"):
        flips([True], [False], ["a", "b"])
