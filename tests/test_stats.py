"""Tests of judge.stats: every formula against hand-computed values, scipy where it has one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from judge.schemas import KLSummary
from judge.stats import (
    CI,
    FlipCounts,
    bootstrap_mean_ci,
    flips,
    kl_summary,
    mcnemar_exact,
    paired_bootstrap_mean_delta,
    spearman_ci,
    win_rate_ci,
    win_tie_loss,
)

# --------------------------------------------------------------------------- bootstrap of means


def test_paired_delta_estimate_by_hand() -> None:
    # deltas = [4-5, 6-6, 9-7] = [-1, 0, 2]; mean = 1/3
    ci = paired_bootstrap_mean_delta([5, 6, 7], [4, 6, 9])
    assert ci.estimate == pytest.approx(1 / 3)
    assert ci.n == 3 and ci.n_clusters == 3
    assert ci.low <= ci.estimate <= ci.high
    # a resampled mean of {-1, 0, 2} can only lie in [-1, 2]
    assert -1 <= ci.low and ci.high <= 2
    assert ci.level == pytest.approx(0.95)


def test_paired_delta_drops_nan_pairs() -> None:
    # pair 2 has a NaN on the baseline side, pair 4 on the compressed side: kept deltas [1, 3]
    ci = paired_bootstrap_mean_delta([1.0, math.nan, 2.0, 0.0], [2.0, 5.0, 5.0, math.nan])
    assert ci.n == 2
    assert ci.estimate == pytest.approx(2.0)  # (1 + 3) / 2


def test_bootstrap_two_values_distribution() -> None:
    # values {0, 1}: the 4 equally likely resamples have means 0, .5, .5, 1, so with 4000 draws
    # about 1000 are 0 and 1000 are 1; the 2.5% and 97.5% quantiles are therefore exactly 0 and 1.
    ci = bootstrap_mean_ci([0.0, 1.0], n_resamples=4000, seed=3)
    assert (ci.estimate, ci.low, ci.high) == (0.5, 0.0, 1.0)


def test_bootstrap_constant_values_zero_width() -> None:
    ci = bootstrap_mean_ci([7.0] * 5)
    assert (ci.estimate, ci.low, ci.high) == (7.0, 7.0, 7.0)


def test_bootstrap_matches_scipy_percentile_bootstrap() -> None:
    x = np.random.default_rng(11).normal(1.0, 2.0, size=60)
    ours = bootstrap_mean_ci(x, n_resamples=20000, seed=1)
    ref = sps.bootstrap((x,), np.mean, n_resamples=20000, method="percentile",
                        confidence_level=0.95, random_state=np.random.default_rng(2)).confidence_interval
    se = x.std(ddof=1) / np.sqrt(len(x))
    # Monte Carlo error of a 2.5% quantile from 20000 resamples is ~0.02 SE; allow 0.1 SE.
    assert ours.low == pytest.approx(ref.low, abs=0.1 * se)
    assert ours.high == pytest.approx(ref.high, abs=0.1 * se)
    assert ours.estimate == pytest.approx(x.mean())


def test_bootstrap_seed_reproducible_and_seed_sensitive() -> None:
    x = np.random.default_rng(0).normal(size=40)
    a = bootstrap_mean_ci(x, seed=5)
    b = bootstrap_mean_ci(x, seed=5)
    c = bootstrap_mean_ci(x, seed=6)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.estimate == c.estimate


def test_cluster_estimate_is_item_mean() -> None:
    # items [1, 1, 1, 4] in clusters [a, a, a, b]: item mean 7/4 = 1.75 (not the cluster mean 2.5)
    ci = bootstrap_mean_ci([1, 1, 1, 4], ["a", "a", "a", "b"])
    assert ci.estimate == pytest.approx(1.75)
    assert ci.n == 4 and ci.n_clusters == 2
    # a resample is 2 clusters: {a,a} -> 1, {a,b} -> 7/4, {b,b} -> 4; so the CI lies in [1, 4]
    assert ci.low == pytest.approx(1.0) and ci.high == pytest.approx(4.0)


def test_cluster_bootstrap_keeps_clusters_together() -> None:
    # 10 questions x 10 identical items: the real information is 10 values, not 100. Ignoring the
    # clusters makes the interval ~sqrt(10) ~ 3.2 times too narrow.
    cluster_values = np.random.default_rng(4).normal(size=10)
    values = np.repeat(cluster_values, 10)  # (100,)
    groups = np.repeat(np.arange(10), 10)
    by_item = bootstrap_mean_ci(values, seed=0)
    by_cluster = bootstrap_mean_ci(values, groups, seed=0)
    assert by_item.estimate == pytest.approx(by_cluster.estimate)
    assert by_cluster.n_clusters == 10 and by_item.n_clusters == 100
    assert (by_cluster.high - by_cluster.low) > 2 * (by_item.high - by_item.low)


def test_paired_delta_cluster_keeps_pairs_together() -> None:
    # two turns per question; the turn-1 and turn-2 deltas of a question are equal, so the
    # clustered CI must be wider than the item CI (which treats 2 copies as 2 pieces of evidence).
    rng = np.random.default_rng(8)
    base = rng.normal(size=30)
    delta = np.repeat(rng.normal(size=15), 2)
    groups = np.repeat([f"q{i}" for i in range(15)], 2)
    plain = paired_bootstrap_mean_delta(base, base + delta, seed=1)
    clustered = paired_bootstrap_mean_delta(base, base + delta, groups=groups, seed=1)
    assert clustered.estimate == pytest.approx(delta.mean())
    assert (clustered.high - clustered.low) > 1.2 * (plain.high - plain.low)


def test_singleton_groups_equal_no_groups() -> None:
    x = np.random.default_rng(9).normal(size=25)
    assert bootstrap_mean_ci(x, seed=4) == bootstrap_mean_ci(x, list(range(25)), seed=4)


def test_bootstrap_degenerate_inputs() -> None:
    empty = bootstrap_mean_ci([])
    assert empty.n == 0 and math.isnan(empty.estimate) and math.isnan(empty.low)
    assert empty.note == "no data"
    all_nan = paired_bootstrap_mean_delta([math.nan], [1.0])
    assert all_nan.n == 0 and math.isnan(all_nan.estimate)
    one_cluster = bootstrap_mean_ci([1.0, 3.0], ["q", "q"])
    assert one_cluster.estimate == 2.0 and math.isnan(one_cluster.low)
    assert one_cluster.note is not None and "resampling units" in one_cluster.note


def test_bootstrap_bad_arguments() -> None:
    with pytest.raises(ValueError, match="items"):
        paired_bootstrap_mean_delta([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="groups"):
        bootstrap_mean_ci([1, 2], ["a"])
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_mean_ci([1, 2], alpha=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_mean_ci([1, 2], n_resamples=0)


def test_ci_json_round_trip_with_nan() -> None:
    ci = bootstrap_mean_ci([])
    back = CI.model_validate_json(ci.model_dump_json())
    assert back.n == 0 and math.isnan(back.estimate) and math.isnan(back.high)


# --------------------------------------------------------------------------- head to head


def test_win_tie_loss_by_hand() -> None:
    # W=1, T=1, L=2: win rate = (1 + 0.5) / 4 = 0.375
    wtl = win_tie_loss(["compressed", "tie", "baseline", "baseline"])
    assert (wtl.compressed_wins, wtl.ties, wtl.baseline_wins, wtl.n) == (1, 1, 2, 4)
    assert wtl.win_rate == pytest.approx(0.375)
    assert math.isnan(win_tie_loss([]).win_rate)
    with pytest.raises(ValueError, match="unknown outcome"):
        win_tie_loss(["A>B"])  # type: ignore[list-item]


def test_win_rate_ci_by_hand_and_clusters() -> None:
    outcomes = ["compressed", "tie", "baseline", "baseline"]
    ci = win_rate_ci(outcomes)  # type: ignore[arg-type]
    assert ci.estimate == pytest.approx(0.375)
    assert 0.0 <= ci.low <= ci.estimate <= ci.high <= 1.0
    # all ties: win rate exactly 0.5 with a zero-width interval
    ties = win_rate_ci(["tie"] * 6)
    assert (ties.estimate, ties.low, ties.high) == (0.5, 0.5, 0.5)
    # clusters of two identical games are resampled together -> wider interval
    many = ["compressed", "baseline", "tie", "compressed", "baseline"] * 4
    doubled = [o for o in many for _ in range(2)]
    groups = [i for i in range(len(many)) for _ in range(2)]
    wide = win_rate_ci(doubled, groups, seed=2)  # type: ignore[arg-type]
    narrow = win_rate_ci(doubled, seed=2)  # type: ignore[arg-type]
    assert wide.estimate == pytest.approx(narrow.estimate)
    assert (wide.high - wide.low) > 1.2 * (narrow.high - narrow.low)


# --------------------------------------------------------------------------- flips and McNemar


def test_mcnemar_by_hand() -> None:
    # b=1, c=9: P(X <= 1), X ~ Bin(10, 1/2) = (C(10,0) + C(10,1)) / 2^10 = 11/1024; p = 22/1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024, rel=1e-12)
    assert mcnemar_exact(9, 1) == pytest.approx(0.021484375, rel=1e-12)
    # b=0, c=3: 2 * (1/8) = 0.25
    assert mcnemar_exact(0, 3) == pytest.approx(0.25)
    # b=c: 2 * P(X <= k) > 1, capped at 1
    assert mcnemar_exact(4, 4) == 1.0
    assert mcnemar_exact(0, 0) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_mcnemar_matches_scipy_binomtest() -> None:
    for b in range(0, 16):
        for c in range(0, 16):
            if b + c == 0:
                continue
            ref = sps.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
            assert mcnemar_exact(b, c) == pytest.approx(ref, rel=1e-9), (b, c)


def test_flips_by_hand() -> None:
    base = [True, True, False, False, True, None]
    comp = [False, True, True, False, True, True]
    f = flips(base, comp)
    # kept pairs 0..4: c2i = {0}, i2c = {2}, both correct = {1, 4}, both incorrect = {3}
    assert isinstance(f, FlipCounts)
    assert (f.n, f.n_dropped) == (5, 1)
    assert (f.correct_to_incorrect, f.incorrect_to_correct) == (1, 1)
    assert (f.both_correct, f.both_incorrect) == (2, 1)
    assert f.flip_percent == pytest.approx(40.0)  # (1 + 1) / 5 * 100
    assert f.baseline_accuracy == pytest.approx(0.6)  # 3/5
    assert f.compressed_accuracy == pytest.approx(0.6)  # 3/5: accuracy unchanged, 40% flipped
    assert f.mcnemar_p == 1.0  # b = c = 1


def test_flips_lopsided_and_empty() -> None:
    # 9 answers go wrong, 1 goes right, 10 stay right: McNemar(9, 1) = 22/1024
    base = [True] * 9 + [False] + [True] * 10
    comp = [False] * 9 + [True] + [True] * 10
    f = flips(base, comp)
    assert f.mcnemar_p == pytest.approx(22 / 1024)
    assert f.baseline_accuracy == pytest.approx(19 / 20)
    assert f.compressed_accuracy == pytest.approx(11 / 20)
    empty = flips([], [])
    assert empty.n == 0 and math.isnan(empty.flip_percent) and empty.mcnemar_p == 1.0
    with pytest.raises(ValueError):
        flips([True], [True, False])


# --------------------------------------------------------------------------- Spearman


def test_spearman_by_hand_and_scipy() -> None:
    # ranks x = [1,2,3,4,5]; y = [5,6,7,8,7] -> ranks [1,2,3.5,5,3.5]
    # deviations dx = [-2,-1,0,1,2], dy = [-2,-1,.5,2,.5]
    # sum dx*dy = 4+1+0+2+1 = 8; sum dx^2 = 10; sum dy^2 = 4+1+.25+4+.25 = 9.5
    # rho = 8 / sqrt(95) = 0.82078268...
    x, y = [1, 2, 3, 4, 5], [5, 6, 7, 8, 7]
    ci = spearman_ci(x, y, n_resamples=500)
    assert ci.estimate == pytest.approx(8 / math.sqrt(95))
    assert ci.estimate == pytest.approx(sps.spearmanr(x, y).statistic)
    assert ci.n == 5
    assert -1.0 <= ci.low <= ci.high <= 1.0


def _rank_corr(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Reference Spearman for scipy.stats.bootstrap: scipy's ranks, then Pearson along axis."""
    ra, rb = sps.rankdata(a, axis=axis), sps.rankdata(b, axis=axis)
    ra = ra - ra.mean(axis=axis, keepdims=True)
    rb = rb - rb.mean(axis=axis, keepdims=True)
    return (ra * rb).sum(axis) / np.sqrt((ra * ra).sum(axis) * (rb * rb).sum(axis))


def test_spearman_bootstrap_against_scipy() -> None:
    rng = np.random.default_rng(21)
    x = rng.normal(size=80)
    y = 0.6 * x + rng.normal(size=80)
    assert _rank_corr(x, y) == pytest.approx(sps.spearmanr(x, y).statistic)
    ours = spearman_ci(x, y, n_resamples=4000, seed=0)
    ref = sps.bootstrap((x, y), _rank_corr, paired=True, vectorized=True, n_resamples=4000,
                        method="percentile", random_state=np.random.default_rng(1)).confidence_interval
    assert ours.estimate == pytest.approx(sps.spearmanr(x, y).statistic)
    # both are Monte Carlo estimates of the same quantiles (~0.005 in rho each at B=4000)
    assert ours.low == pytest.approx(ref.low, abs=0.03)
    assert ours.high == pytest.approx(ref.high, abs=0.03)


def test_weighted_spearman_equals_spearman_of_expanded_sample() -> None:
    # a resample given as multiplicities must give scipy's rho on the sample written out in full,
    # ties included (x has repeated values, and repetition itself creates ties)
    from judge.stats import _weighted_spearman

    rng = np.random.default_rng(2)
    x = rng.integers(0, 5, size=12).astype(float)
    y = rng.normal(size=12)
    weights = rng.integers(0, 4, size=(6, 12)).astype(float)  # (6 resamples, 12 items)
    got = _weighted_spearman(x, y, weights)
    for row, w in zip(got, weights):
        idx = np.repeat(np.arange(12), w.astype(int))
        assert row == pytest.approx(sps.spearmanr(x[idx], y[idx]).statistic, rel=1e-10)
    # a resample with one distinct x value has no rho
    only_first = np.zeros((1, 12))
    only_first[0, 0] = 5
    assert np.isnan(_weighted_spearman(x, y, only_first)[0])


def test_spearman_reproducible_and_clustered() -> None:
    rng = np.random.default_rng(5)
    xq = rng.normal(size=12)
    yq = xq + rng.normal(size=12)
    x, y = np.repeat(xq, 3), np.repeat(yq, 3) + 1e-3 * rng.normal(size=36)
    groups = np.repeat(np.arange(12), 3)
    a = spearman_ci(x, y, groups=groups, n_resamples=800, seed=3)
    assert a == spearman_ci(x, y, groups=groups, n_resamples=800, seed=3)
    assert (a.low, a.high) != (spearman_ci(x, y, groups=groups, n_resamples=800, seed=4).low,
                               spearman_ci(x, y, groups=groups, n_resamples=800, seed=4).high)
    plain = spearman_ci(x, y, n_resamples=800, seed=3)
    assert a.n_clusters == 12 and plain.n_clusters == 36
    assert (a.high - a.low) > 1.2 * (plain.high - plain.low)


def test_spearman_degenerate() -> None:
    short = spearman_ci([1.0, 2.0], [3.0, 1.0])
    assert math.isnan(short.estimate) and short.n == 2 and "< 3" in (short.note or "")
    const = spearman_ci([1, 2, 3, 4], [2, 2, 2, 2])
    assert math.isnan(const.estimate) and "constant" in (const.note or "")
    with_nan = spearman_ci([1, 2, math.nan, 4, 5], [1, 3, 2, 4, 6], n_resamples=200)
    assert with_nan.n == 4
    assert with_nan.estimate == pytest.approx(1.0)  # [1,2,4,5] vs [1,3,4,6] are co-monotone


# --------------------------------------------------------------------------- KL summary


def _hand_inputs() -> dict[str, list[float] | list[bool]]:
    return {
        "kl": [0.1, 0.2, 0.3, 0.4],
        "same_top1": [True, True, True, False],
        "p_base_tok": [0.5, 0.4, 0.9, 0.2],
        "p_comp_tok": [0.4, 0.4, 0.6, 0.3],
        "nll_base": [1.0, 2.0, 3.0, 4.0],
        "nll_comp": [2.0, 2.0, 5.0, 4.0],
    }


def test_kl_summary_by_hand() -> None:
    s = kl_summary(**_hand_inputs(), reverse_kl=[0, 0, 0, 0.4], jsd=[0.01, 0.02, 0.03, 0.04])
    assert isinstance(s, KLSummary)
    assert s.n_tokens == 4
    assert s.kl_mean == pytest.approx(0.25)  # 1.0 / 4
    # deviations [-.15, -.05, .05, .15], squares sum .05; SE = sqrt(.05 / (4 * 3)) = 0.0645497
    assert s.kl_se == pytest.approx(math.sqrt(0.05 / 12))
    assert s.kl_median == pytest.approx(0.25)  # (0.2 + 0.3) / 2
    assert s.kl_p90 == pytest.approx(0.37)  # position 0.9*3 = 2.7 -> .3 + .7*(.4-.3)
    assert s.kl_p99 == pytest.approx(0.397)  # position 2.97
    assert s.kl_p999 == pytest.approx(0.3997)  # position 2.997
    assert s.kl_max == pytest.approx(0.4)
    assert s.same_top1 == pytest.approx(0.75)
    assert s.same_top1_se == pytest.approx(0.25)  # sqrt(.75 * .25 / 3) = sqrt(.0625)
    # dp = [-.1, 0, -.3, .1]: mean -.3/4 = -.075; rms sqrt((.01 + 0 + .09 + .01) / 4) = sqrt(.0275)
    assert s.dp_mean == pytest.approx(-0.075)
    assert s.dp_rms == pytest.approx(math.sqrt(0.0275))
    # d = nll_comp - nll_base = [1, 0, 2, 0]: mean .75; deviations [.25, -.75, 1.25, -.75]
    # squares .0625 + .5625 + 1.5625 + .5625 = 2.75; SE = sqrt(2.75 / 12)
    assert s.log_ppl_ratio == pytest.approx(0.75)
    assert s.log_ppl_ratio_se == pytest.approx(math.sqrt(2.75 / 12))
    assert s.reverse_kl_mean == pytest.approx(0.1)
    assert s.jsd_mean == pytest.approx(0.025)


def test_kl_summary_matches_llama_cpp_sum_formulas() -> None:
    # llama.cpp keeps running sums and computes SE = sqrt((sum2/n - mean^2) / (n - 1)) and the
    # log-PPL-ratio SE as sqrt(se_q^2 + se_base^2 - 2 cov) with cov = (sum_ab/n - mean_a mean_b)/(n-1);
    # its percentile interpolates at fraction * (n - 1) over the sorted values.
    rng = np.random.default_rng(13)
    n = 1000
    kl = rng.gamma(0.5, 0.02, size=n)
    nll_base = rng.gamma(2.0, 1.0, size=n)
    nll_comp = nll_base + rng.normal(0.05, 0.2, size=n)
    p_base, p_comp = np.exp(-nll_base), np.exp(-nll_comp)
    top1 = rng.random(n) < 0.9
    s = kl_summary(kl, top1, p_base, p_comp, nll_base, nll_comp)

    def mean_and_se(a: np.ndarray) -> tuple[float, float]:
        m = a.sum() / n
        return m, math.sqrt((np.sum(a * a) / n - m * m) / (n - 1))

    def percentile(values: np.ndarray, fraction: float) -> float:
        v = np.sort(values)
        pos = fraction * (n - 1)
        i = int(pos)
        t = pos - i
        return float((1 - t) * v[i] + t * v[min(i + 1, n - 1)])

    m, se = mean_and_se(kl)
    assert s.kl_mean == pytest.approx(m) and s.kl_se == pytest.approx(se, rel=1e-9)
    for fraction, got in [(0.9, s.kl_p90), (0.99, s.kl_p99), (0.999, s.kl_p999)]:
        assert got == pytest.approx(percentile(kl, fraction), rel=1e-12)
    mq, se_q = mean_and_se(nll_comp)
    mb, se_b = mean_and_se(nll_base)
    cov = (np.sum(nll_comp * nll_base) / n - mq * mb) / (n - 1)
    assert s.log_ppl_ratio == pytest.approx(mq - mb)
    assert s.log_ppl_ratio_se == pytest.approx(math.sqrt(se_q**2 + se_b**2 - 2 * cov), rel=1e-9)
    dp = p_comp - p_base
    assert s.dp_rms == pytest.approx(math.sqrt(np.sum(dp * dp) / n))
    p = top1.sum() / n
    assert s.same_top1_se == pytest.approx(math.sqrt(p * (1 - p) / (n - 1)))


def test_kl_summary_small_n() -> None:
    one = kl_summary([0.2], [True], [0.5], [0.25], [1.0], [1.5])
    assert one.n_tokens == 1 and one.kl_mean == pytest.approx(0.2)
    assert one.kl_median == one.kl_p999 == one.kl_max == pytest.approx(0.2)
    assert math.isnan(one.kl_se) and math.isnan(one.same_top1_se)
    assert math.isnan(one.log_ppl_ratio_se) and one.log_ppl_ratio == pytest.approx(0.5)
    assert one.dp_mean == pytest.approx(-0.25) and one.dp_rms == pytest.approx(0.25)
    assert one.reverse_kl_mean is None and one.jsd_mean is None
    zero = kl_summary([], [], [], [], [], [])
    assert zero.n_tokens == 0 and math.isnan(zero.kl_mean) and math.isnan(zero.kl_max)
    assert math.isnan(zero.same_top1)


def test_kl_summary_length_mismatch() -> None:
    args = _hand_inputs()
    args["nll_comp"] = [1.0, 2.0]
    with pytest.raises(ValueError, match="nll_comp"):
        kl_summary(**args)  # type: ignore[arg-type]


def test_kl_summary_quantiles_of_the_bound_when_kl_is_estimated() -> None:
    # kl = bound + a noisy tail estimate: its upper order statistics lean upward, so with a bound
    # the quantiles and the maximum are the bound's (each a lower bound of the exact quantile)
    args = _hand_inputs()
    args["kl"] = [0.1, 0.5, 0.3, 0.9]
    s = kl_summary(**args, kl_bound=[0.1, 0.2, 0.3, 0.4])
    assert s.quantiles_of == "kl lower bound"
    assert s.kl_mean == pytest.approx(0.45)  # the mean is the estimate's: (.1+.5+.3+.9)/4
    assert s.kl_bound_mean == pytest.approx(0.25)
    assert s.kl_median == pytest.approx(0.25)  # bound sorted .1 .2 .3 .4: (0.2 + 0.3) / 2
    assert s.kl_p90 == pytest.approx(0.37) and s.kl_max == pytest.approx(0.4)
    plain = kl_summary(**args)
    assert plain.quantiles_of == "kl" and plain.kl_max == pytest.approx(0.9)
    assert plain.kl_median == pytest.approx(0.4)  # kl sorted .1 .3 .5 .9: (0.3 + 0.5) / 2
