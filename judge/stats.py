"""Paired statistics: bootstrap CIs, win/tie/loss, flips + McNemar, Spearman, token KL summaries.

Pure functions over numpy arrays or plain lists; each returns a small frozen record defined here
(or `judge.schemas.KLSummary`). Nothing here reads files or knows about runs.

Conventions
-----------
* **Paired.** Every comparison is over the same items (question, turn) under both models; deltas
  are ``compressed - baseline``, so a negative score delta means the compressed model is worse.
* **Percentile bootstrap.** ``B`` resamples drawn with a seeded ``numpy.random.Generator``
  (``default_rng(seed)``): the same inputs and seed give identical intervals. The interval is the
  ``alpha/2`` and ``1 - alpha/2`` quantiles of the ``B`` resampled statistics (numpy's "linear"
  quantile).
* **Expanded percentile** (``method="expanded"``, what the scorecard uses for means). The plain
  percentile interval of a mean is too narrow with few resampling units G: it uses the plug-in
  spread (divisor G, not G - 1) and normal rather than t quantiles, so by simulation a nominal 95%
  interval covers 82-89% at G = 3, 84-87% at 5 and 91-93% at 10 (docs/STATISTICS.md). The expanded interval (Hesterberg,
  "What teachers should know about the bootstrap", 2015) takes the quantiles at alpha'/2 and
  1 - alpha'/2 of the same resamples, with Phi^-1(alpha'/2) = -sqrt(G / (G - 1)) t_{1-alpha/2, G-1}:
  the correction a t interval makes to a z interval. Its coverage is measured by simulation in
  tests/test_stats_coverage.py (about 95% from G = 8 on for symmetric and win/tie/loss data).
* **Minimum number of resampling units.** ``min_clusters`` (default 2) below which no interval is
  given (NaN, with a ``note`` saying why). The scorecard uses `MIN_QUESTIONS_FOR_INTERVAL`.
* **Clusters.** With ``groups`` (e.g. the question id of each item), whole groups are resampled
  with replacement, so items of one question (turn 1 and turn 2) stay together; the statistic is
  still computed over items (a mean is ``sum of resampled items / number of resampled items``).
  Without ``groups`` each item is its own group, and both paths draw the same random numbers, so
  ``groups=range(n)`` gives exactly the ``groups=None`` interval.
* **Missing values.** NaN values (or NaN pairs, when either side is NaN) are dropped before
  anything is computed; ``n`` in the result counts what was kept.
* **Degenerate input.** No data, or fewer than two resampling units, gives a NaN interval and a
  ``note`` saying why, never an exception.

Records serialise NaN as the JSON string ``"NaN"`` (``ser_json_inf_nan="strings"``) so that they
read back; plain ``null`` would not validate as a float.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import ConfigDict
from scipy import stats as sps

from judge.schemas import KLSummary, Record

Outcome = Literal["compressed", "baseline", "tie"]  # same closed set as judge.schemas.Winner
_OUTCOME_SCORE: dict[str, float] = {"compressed": 1.0, "tie": 0.5, "baseline": 0.0}
_NAN = float("nan")
_CHUNK_ELEMENTS = 2_000_000  # bound on the (resamples x groups) index block held at once
IntervalMethod = Literal["percentile", "expanded"]

# Fewer questions than this in a scorecard row: no interval. By simulation (tests/
# test_stats_coverage.py, docs/STATISTICS.md) the expanded 95% interval covers 94-95% from 8
# questions on for symmetric grade deltas and win/tie/loss scores (~92-94% for grade drops
# concentrated on a few questions); below 8 coverage falls off (5 questions: 92-94%, 3: 83-90%)
# and for skewed data much further, so no method gives a trustworthy interval there.
MIN_QUESTIONS_FOR_INTERVAL = 8


class StatsRecord(Record):
    """Base of the records here: frozen, no unknown fields, NaN written as ``"NaN"`` in JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class CI(StatsRecord):
    """A point estimate with a percentile-bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    n: int  # items used (after dropping NaN)
    n_clusters: int  # resampling units: groups when given, else items
    level: float  # confidence level, 1 - alpha
    n_resamples: int
    note: str | None = None
    method: IntervalMethod = "percentile"  # see the module docstring


class WinTieLoss(StatsRecord):
    """Head-to-head counts from the compressed model's side; ``win_rate = (W + T/2) / N``."""

    compressed_wins: int
    ties: int
    baseline_wins: int
    n: int
    win_rate: float  # NaN when n == 0


class FlipCounts(StatsRecord):
    """Correctness changes between the baseline and compressed answers to the same items."""

    n: int  # pairs with a verdict on both sides
    n_dropped: int  # pairs dropped because one side had no verdict (None)
    correct_to_incorrect: int
    incorrect_to_correct: int
    both_correct: int
    both_incorrect: int
    flip_percent: float  # (c2i + i2c) / n * 100
    baseline_accuracy: float  # fraction in [0, 1]
    compressed_accuracy: float
    # exact two-sided. With groups (questions): the question-level sign-flip test
    # (`clustered_mcnemar_exact`), which equals the item-level one when every group has one pair
    mcnemar_p: float
    n_clusters: int | None = None  # groups with at least one pair, when grouped
    mcnemar_items_p: float | None = None  # the item-level exact McNemar p, when grouped
    accuracy_delta: CI | None = None  # compressed - baseline accuracy, question-level bootstrap


# --------------------------------------------------------------------------- helpers


def _check_bootstrap_args(n_resamples: int, alpha: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _as_1d(name: str, values: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _group_codes(groups: Sequence[Hashable] | NDArray | None, n: int) -> NDArray[np.int64]:
    """Integer codes 0..G-1 for ``groups`` in order of first appearance; ``arange(n)`` if None."""
    if groups is None:
        return np.arange(n, dtype=np.int64)
    groups_list = list(groups)
    if len(groups_list) != n:
        raise ValueError(f"groups has {len(groups_list)} entries but there are {n} items")
    codes: dict[Hashable, int] = {}
    return np.array([codes.setdefault(g, len(codes)) for g in groups_list], dtype=np.int64)


def _nan_ci(n: int, n_clusters: int, n_resamples: int, alpha: float, note: str,
            estimate: float = _NAN, method: IntervalMethod = "percentile") -> CI:
    return CI(estimate=estimate, low=_NAN, high=_NAN, n=n, n_clusters=n_clusters, level=1 - alpha,
              n_resamples=n_resamples, note=note, method=method)


def interval_alpha(alpha: float, n_units: int, method: IntervalMethod) -> float:
    """The tail mass alpha' whose alpha'/2 and 1 - alpha'/2 bootstrap quantiles form the interval.

    ``percentile``: alpha. ``expanded``: alpha' = 2 Phi(-sqrt(G / (G - 1)) t_{1 - alpha/2, G - 1})
    with G = ``n_units`` >= 2 (module docstring); for G = 8 and alpha = 0.05, alpha' = 0.0116.
    """
    if method == "percentile":
        return alpha
    if method != "expanded":
        raise ValueError(f"unknown interval method {method!r}; expected 'percentile' or 'expanded'")
    g = n_units
    z = math.sqrt(g / (g - 1)) * float(sps.t.ppf(1 - alpha / 2, g - 1))
    return float(2 * sps.norm.cdf(-z))


def _percentile_ci(boot: NDArray[np.float64], alpha: float) -> tuple[float, float]:
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2], method="linear")
    return float(low), float(high)


def _too_few_note(n_groups: int, min_clusters: int, alpha: float) -> str:
    if min_clusters <= 2:
        return "fewer than 2 resampling units: no interval"
    level = f"{100 * (1 - alpha):g}%"
    return (f"{n_groups} questions < {min_clusters}: no interval (from so few questions a {level} "
            f"bootstrap interval covers well under {level})")


# --------------------------------------------------------------------------- bootstrap of means


def bootstrap_ratio_ci(
    sums: ArrayLike,
    counts: ArrayLike,
    groups: Sequence[Hashable] | NDArray | None = None,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    method: IntervalMethod = "percentile",
    min_clusters: int = 2,
) -> CI:
    """``sum(sums) / sum(counts)`` with a bootstrap CI resampling whole groups of units.

    Each unit i carries a sum s_i and a count c_i > 0 (a (question, turn) item: the sum of its
    tokens' KL and its number of tokens), so the estimate is the pooled mean over everything the
    units hold. For a ratio of means pass the two sides' values (a recovery ratio: the compressed
    and the baseline grades). One resample draws G groups with replacement (each unit is a group
    when ``groups`` is None) and computes sum_{drawn g} S_g / sum_{drawn g} C_g, S_g and C_g being
    the group's sum of s and of c. Units with a NaN on either side or a count <= 0 are dropped
    (an empty unit carries nothing); ``n`` counts kept units.
    """
    _check_bootstrap_args(n_resamples, alpha)
    s = _as_1d("sums", sums)  # (n,)
    c = _as_1d("counts", counts)  # (n,)
    if s.shape != c.shape:
        raise ValueError(f"sums has {len(s)} units but counts has {len(c)}")
    codes = _group_codes(groups, len(s))  # (n,)
    keep = ~np.isnan(s) & ~np.isnan(c) & (c > 0)
    s, c, codes = s[keep], c[keep], codes[keep]
    n = len(s)
    if n == 0:
        return _nan_ci(0, 0, n_resamples, alpha, "no data", method=method)
    _, codes = np.unique(codes, return_inverse=True)  # renumber 0..G-1 after dropping
    n_groups = int(codes.max()) + 1
    estimate = float(s.sum() / c.sum())
    if n_groups < max(2, min_clusters):
        return _nan_ci(n, n_groups, n_resamples, alpha,
                       _too_few_note(n_groups, min_clusters, alpha), estimate, method)
    group_sum = np.bincount(codes, weights=s, minlength=n_groups)  # (G,)
    group_count = np.bincount(codes, weights=c, minlength=n_groups)  # (G,)
    rng = np.random.default_rng(seed)
    boot = np.empty(n_resamples)  # (B,)
    chunk = max(1, _CHUNK_ELEMENTS // n_groups)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n_groups, size=(stop - start, n_groups))  # (b, G)
        boot[start:stop] = group_sum[idx].sum(axis=1) / group_count[idx].sum(axis=1)
    low, high = _percentile_ci(boot, interval_alpha(alpha, n_groups, method))
    return CI(estimate=estimate, low=low, high=high, n=n, n_clusters=n_groups, level=1 - alpha,
              n_resamples=n_resamples, method=method)


def bootstrap_mean_ci(
    values: ArrayLike,
    groups: Sequence[Hashable] | NDArray | None = None,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    method: IntervalMethod = "percentile",
    min_clusters: int = 2,
) -> CI:
    """Mean of ``values`` with a bootstrap CI, resampling items or whole groups.

    estimate = sum_i x_i / n over the kept (non-NaN) items. One resample draws G groups with
    replacement (G = number of groups; each item is a group when ``groups`` is None) and computes
    sum_{drawn g} S_g / sum_{drawn g} C_g, where S_g and C_g are the sum and count of group g:
    `bootstrap_ratio_ci` with every count 1.
    """
    x = _as_1d("values", values)  # (n,)
    return bootstrap_ratio_ci(x, np.ones_like(x), groups, n_resamples=n_resamples, seed=seed,
                              alpha=alpha, method=method, min_clusters=min_clusters)


def paired_bootstrap_mean_delta(
    baseline: ArrayLike,
    compressed: ArrayLike,
    *,
    groups: Sequence[Hashable] | NDArray | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    method: IntervalMethod = "percentile",
    min_clusters: int = 2,
) -> CI:
    """Mean paired delta ``mean(compressed - baseline)`` with a bootstrap CI over pairs.

    Pairs where either side is NaN (e.g. a failed judgment) are dropped first. Pairs are resampled
    as units (never the two sides independently), or whole ``groups`` of pairs when given, exactly
    as `bootstrap_mean_ci` does on d_i = compressed_i - baseline_i.
    """
    base = _as_1d("baseline", baseline)
    comp = _as_1d("compressed", compressed)
    if base.shape != comp.shape:
        raise ValueError(f"baseline has {len(base)} items but compressed has {len(comp)}")
    delta = comp - base  # (n,), NaN where either side is NaN
    return bootstrap_mean_ci(delta, groups, n_resamples=n_resamples, seed=seed, alpha=alpha,
                             method=method, min_clusters=min_clusters)


# --------------------------------------------------------------------------- head to head


def win_tie_loss(outcomes: Sequence[Outcome]) -> WinTieLoss:
    """Count outcomes; ``win_rate = (compressed_wins + 0.5 * ties) / n`` (NaN when n == 0)."""
    counts = {"compressed": 0, "tie": 0, "baseline": 0}
    for o in outcomes:
        if o not in counts:
            raise ValueError(f"unknown outcome {o!r}; expected 'compressed', 'baseline' or 'tie'")
        counts[o] += 1
    n = sum(counts.values())
    win_rate = (counts["compressed"] + 0.5 * counts["tie"]) / n if n else _NAN
    return WinTieLoss(compressed_wins=counts["compressed"], ties=counts["tie"],
                      baseline_wins=counts["baseline"], n=n, win_rate=win_rate)


def win_rate_ci(
    outcomes: Sequence[Outcome],
    groups: Sequence[Hashable] | NDArray | None = None,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    method: IntervalMethod = "percentile",
    min_clusters: int = 2,
) -> CI:
    """The compressed model's win rate (W + T/2) / N with a bootstrap CI (by group when given).

    Each outcome scores 1 (compressed wins), 0.5 (tie) or 0 (baseline wins); the win rate is the
    mean score, so 0.5 means the two models are indistinguishable to the judge.
    """
    win_tie_loss(outcomes)  # validates the labels
    scores = np.array([_OUTCOME_SCORE[o] for o in outcomes], dtype=np.float64)  # (n,)
    return bootstrap_mean_ci(scores, groups, n_resamples=n_resamples, seed=seed, alpha=alpha,
                             method=method, min_clusters=min_clusters)


# --------------------------------------------------------------------------- flips


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts ``b`` and ``c``.

    Under H0 each discordant pair goes either way with probability 1/2, so
    p = min(1, 2 * BinomCDF(min(b, c); b + c, 1/2)), and p = 1 when b + c = 0.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2.0 * sps.binom.cdf(min(b, c), b + c, 0.5)))


def clustered_mcnemar_exact(differences: Sequence[int]) -> float:
    """Exact two-sided McNemar test over clusters: the sign-flip (randomisation) test.

    ``differences[k]`` = d_k = (correct->incorrect) - (incorrect->correct) pairs of cluster k (a
    question's turns). Under H0 the two models are exchangeable within a question, so each d_k is
    equally likely to have either sign, independently across questions; the statistic is
    S = sum_k d_k and p = P(|S*| >= |S|), S* = sum_k e_k d_k with e_k = +-1 at random. The null
    distribution of S* is built exactly by convolution over its integer support (no sampling).
    Clusters stay whole, so two turns of one question are never counted as two independent pieces
    of evidence. With one pair per cluster every d_k is +-1 or 0 and this is `mcnemar_exact`.
    """
    d = [abs(int(x)) for x in differences]  # (K,)
    observed = abs(sum(int(x) for x in differences))
    total = sum(d)
    if total == 0:
        return 1.0
    prob = np.zeros(2 * total + 1)  # prob[s + total] = P(S* = s) over the clusters folded in so far
    prob[total] = 1.0
    for k in d:
        if k == 0:
            continue
        nxt = np.zeros_like(prob)
        nxt[k:] += 0.5 * prob[:-k]  # e = +1: s -> s + k
        nxt[:-k] += 0.5 * prob[k:]  # e = -1: s -> s - k
        prob = nxt
    support = np.arange(-total, total + 1)  # (2 total + 1,)
    return float(min(1.0, prob[np.abs(support) >= observed].sum()))


def flips(
    baseline_correct: Sequence[bool | None],
    compressed_correct: Sequence[bool | None],
    groups: Sequence[Hashable] | None = None,
) -> FlipCounts:
    """Correct->incorrect and incorrect->correct counts, flip percent, accuracies, McNemar p.

    Pairs where either side is None (no verdict) are dropped and counted in ``n_dropped``.
    flip_percent = (c2i + i2c) / n * 100; accuracy = correct / n; both NaN when n == 0.
    With ``groups`` (the question of each pair), ``mcnemar_p`` is the question-level exact test
    (`clustered_mcnemar_exact`) and the item-level one is kept in ``mcnemar_items_p``.
    """
    if len(baseline_correct) != len(compressed_correct):
        raise ValueError(f"baseline_correct has {len(baseline_correct)} items but "
                         f"compressed_correct has {len(compressed_correct)}")
    if groups is not None and len(groups) != len(baseline_correct):
        raise ValueError(f"groups has {len(groups)} entries but there are "
                         f"{len(baseline_correct)} items")
    group_of = list(groups) if groups is not None else list(range(len(baseline_correct)))
    pairs = [(bool(b), bool(c), g) for b, c, g in zip(baseline_correct, compressed_correct, group_of)
             if b is not None and c is not None]
    n = len(pairs)
    c2i = sum(1 for b, c, _ in pairs if b and not c)
    i2c = sum(1 for b, c, _ in pairs if c and not b)
    both_correct = sum(1 for b, c, _ in pairs if b and c)
    both_incorrect = n - c2i - i2c - both_correct
    item_p = mcnemar_exact(c2i, i2c)
    extra: dict[str, object] = {}
    if groups is not None:
        diff: dict[Hashable, int] = {}
        for b, c, g in pairs:
            diff[g] = diff.get(g, 0) + (1 if b and not c else -1 if c and not b else 0)
        extra = {"n_clusters": len(diff), "mcnemar_items_p": item_p,
                 "mcnemar_p": clustered_mcnemar_exact(list(diff.values()))}
    return FlipCounts(
        n=n,
        n_dropped=len(baseline_correct) - n,
        correct_to_incorrect=c2i,
        incorrect_to_correct=i2c,
        both_correct=both_correct,
        both_incorrect=both_incorrect,
        flip_percent=(c2i + i2c) / n * 100 if n else _NAN,
        baseline_accuracy=(both_correct + c2i) / n if n else _NAN,
        compressed_accuracy=(both_correct + i2c) / n if n else _NAN,
        **{"mcnemar_p": item_p, **extra},  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- correlation


def _weighted_spearman(x: NDArray[np.float64], y: NDArray[np.float64],
                       weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Spearman's rho of each resample given as item multiplicities; NaN where a side is constant.

    ``weights`` (b, n) says how many times each item is in each resample. For a multiset, the
    average rank of a value v is (weight of values < v) + (weight of values == v + 1) / 2, which
    is what rank-then-Pearson on the expanded sample gives; rho is then the weighted Pearson
    correlation of those ranks. Returns (b,).
    """
    return _weighted_pearson(_weighted_ranks(x, weights), _weighted_ranks(y, weights), weights)


def _weighted_ranks(x: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Average ranks (b, n) of x within each weighted resample (see `_weighted_spearman`)."""
    order = np.argsort(x, kind="stable")  # (n,)
    xs = x[order]
    new_value = np.r_[True, xs[1:] != xs[:-1]]  # (n,) first sorted position of a value
    starts = np.flatnonzero(new_value)  # (V,)
    tie_group = np.cumsum(new_value) - 1  # (n,) value index of each sorted position
    value_weight = np.add.reduceat(weights[:, order], starts, axis=1)  # (b, V)
    below = np.cumsum(value_weight, axis=1) - value_weight  # (b, V) weight of smaller values
    ranks_sorted = (below + (value_weight + 1) / 2)[:, tie_group]  # (b, n) in sorted order
    ranks = np.empty_like(ranks_sorted)
    ranks[:, order] = ranks_sorted
    return ranks


def _weighted_pearson(a: NDArray[np.float64], b: NDArray[np.float64],
                      w: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row-wise weighted Pearson correlation (b,); NaN where a side has no spread."""
    total = w.sum(axis=1, keepdims=True)  # (B, 1)
    da = a - (w * a).sum(axis=1, keepdims=True) / total  # (B, n)
    db = b - (w * b).sum(axis=1, keepdims=True) / total
    saa, sbb, sab = (w * da * da).sum(axis=1), (w * db * db).sum(axis=1), (w * da * db).sum(axis=1)
    denom = np.sqrt(saa * sbb)  # (B,)
    # a constant side has zero spread up to rounding; treat tiny spread as none
    const = (saa <= 1e-12 * total[:, 0] ** 3) | (sbb <= 1e-12 * total[:, 0] ** 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(const, np.nan, sab / np.where(const, 1.0, denom))


def spearman_ci(
    x: ArrayLike,
    y: ArrayLike,
    *,
    groups: Sequence[Hashable] | NDArray | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    min_clusters: int = 2,
) -> CI:
    """Spearman's rho (scipy.stats.spearmanr) with a percentile-bootstrap CI over items or groups.

    rho = Pearson correlation of the average ranks of x and y. Pairs with a NaN are dropped. With
    fewer than 3 pairs or a constant side the estimate is NaN and ``note`` says why. Resamples in
    which a side comes out constant have no rho and are skipped (counted in ``note``). Resamples
    are drawn exactly as in `bootstrap_mean_ci` (G group indices with replacement per resample).
    """
    _check_bootstrap_args(n_resamples, alpha)
    xa, ya = _as_1d("x", x), _as_1d("y", y)
    if xa.shape != ya.shape:
        raise ValueError(f"x has {len(xa)} items but y has {len(ya)}")
    codes = _group_codes(groups, len(xa))
    keep = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya, codes = xa[keep], ya[keep], codes[keep]
    n = len(xa)
    n_groups = len(np.unique(codes))
    if n < 3:
        return _nan_ci(n, n_groups, n_resamples, alpha, f"n={n} < 3: no correlation")
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return _nan_ci(n, n_groups, n_resamples, alpha, "constant input: no correlation")
    estimate = float(sps.spearmanr(xa, ya).statistic)
    if n_groups < max(2, min_clusters):
        return _nan_ci(n, n_groups, n_resamples, alpha,
                       _too_few_note(n_groups, min_clusters, alpha), estimate)
    _, codes = np.unique(codes, return_inverse=True)  # (n,) in 0..G-1
    rng = np.random.default_rng(seed)
    boot = np.empty(n_resamples)  # (B,)
    chunk = max(1, _CHUNK_ELEMENTS // (4 * max(n, n_groups)))
    for start in range(0, n_resamples, chunk):
        b = min(start + chunk, n_resamples) - start
        drawn = rng.integers(0, n_groups, size=(b, n_groups))  # (b, G)
        flat = (np.arange(b)[:, None] * n_groups + drawn).ravel()
        times = np.bincount(flat, minlength=b * n_groups).reshape(b, n_groups)  # (b, G)
        boot[start:start + b] = _weighted_spearman(xa, ya, times[:, codes].astype(np.float64))
    ok = ~np.isnan(boot)
    n_skipped = int(n_resamples - ok.sum())
    note = f"{n_skipped} of {n_resamples} resamples had a constant side" if n_skipped else None
    if n_skipped == n_resamples:
        return _nan_ci(n, n_groups, n_resamples, alpha, "every resample had a constant side",
                       estimate)
    low, high = _percentile_ci(boot[ok], alpha)
    return CI(estimate=estimate, low=low, high=high, n=n, n_clusters=n_groups, level=1 - alpha,
              n_resamples=n_resamples, note=note)


# --------------------------------------------------------------------------- token divergence


def _mean(x: NDArray[np.float64]) -> float:
    return float(x.sum() / len(x)) if len(x) else _NAN


def _se_of_mean(x: NDArray[np.float64]) -> float:
    """sqrt(sum (x - mean)^2 / (n (n - 1))): std with ddof=1 over sqrt(n); NaN when n < 2."""
    n = len(x)
    if n < 2:
        return _NAN
    dev = x - x.sum() / n  # (n,)
    return float(np.sqrt((dev @ dev) / (n * (n - 1))))


def kl_summary(
    kl: ArrayLike,
    same_top1: ArrayLike,
    p_base_tok: ArrayLike,
    p_comp_tok: ArrayLike,
    nll_base: ArrayLike,
    nll_comp: ArrayLike,
    *,
    reverse_kl: ArrayLike | None = None,
    jsd: ArrayLike | None = None,
    kl_bound: ArrayLike | None = None,
) -> KLSummary:
    """llama.cpp's ``--kl-divergence`` statistics over n token positions (all arrays shape (n,)).

    * kl_mean = sum kl / n; kl_se = sqrt(sum (kl - mean)^2 / (n (n - 1))). llama.cpp computes the
      same quantity from running sums, sqrt((sum2/n - mean^2) / (n - 1)); we centre first (two
      passes) to avoid cancellation. llama.cpp prints SE 0 when n <= 10; we give the real value,
      and NaN when n < 2.
    * kl_median, kl_p90, kl_p99, kl_p999: numpy percentiles, method "linear", i.e. on sorted
      values v, q(f) = (1 - t) v[i] + t v[i + 1] with f (n - 1) = i + t, which is llama.cpp's
      interpolation (its median averages the two middle values, as this does). kl_max = max.
      With ``kl_bound`` (``kl`` then holds the bound plus a noisy, unbiased tail estimate per
      token) these are taken over ``kl_bound`` (``quantiles_of = "kl lower bound"``): order
      statistics of noisy values lean upward, while bound_i <= exact_i for every i makes each
      quantile of the bound a lower bound of the exact quantile. The means stay those of ``kl``.
    * same_top1 = share of positions whose argmax agrees; same_top1_se = sqrt(p (1 - p) / (n - 1)).
    * dp = p_comp_tok - p_base_tok (probability of the actual next token); dp_mean = sum dp / n,
      dp_rms = sqrt(sum dp^2 / n).
    * log_ppl_ratio = mean nll_comp - mean nll_base = mean d with d = nll_comp - nll_base;
      log_ppl_ratio_se = SE of the mean of d, which equals llama.cpp's
      sqrt(se_comp^2 + se_base^2 - 2 cov(nll_comp, nll_base) / n).
    * reverse_kl_mean, jsd_mean, kl_bound_mean: plain means when those arrays are given, else None.

    n = 0 gives NaN everywhere (n_tokens = 0). NaN in the inputs propagates.
    """
    k = _as_1d("kl", kl)  # (n,)
    n = len(k)
    arrays = {
        "same_top1": _as_1d("same_top1", np.asarray(same_top1, dtype=bool)),
        "p_base_tok": _as_1d("p_base_tok", p_base_tok),
        "p_comp_tok": _as_1d("p_comp_tok", p_comp_tok),
        "nll_base": _as_1d("nll_base", nll_base),
        "nll_comp": _as_1d("nll_comp", nll_comp),
    }
    if reverse_kl is not None:
        arrays["reverse_kl"] = _as_1d("reverse_kl", reverse_kl)
    if jsd is not None:
        arrays["jsd"] = _as_1d("jsd", jsd)
    if kl_bound is not None:
        arrays["kl_bound"] = _as_1d("kl_bound", kl_bound)
    for name, arr in arrays.items():
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} positions but kl has {n}")

    q = arrays.get("kl_bound", k)  # (n,) what the quantiles and the maximum are taken over
    if n:
        p90, p99, p999 = np.percentile(q, [90.0, 99.0, 99.9], method="linear")
        median, kl_max = float(np.median(q)), float(q.max())
    else:
        p90 = p99 = p999 = median = kl_max = _NAN
    top1 = _mean(arrays["same_top1"])
    top1_se = float(np.sqrt(top1 * (1 - top1) / (n - 1))) if n >= 2 else _NAN
    dp = arrays["p_comp_tok"] - arrays["p_base_tok"]  # (n,)
    d_nll = arrays["nll_comp"] - arrays["nll_base"]  # (n,)
    return KLSummary(
        n_tokens=n,
        kl_mean=_mean(k),
        kl_se=_se_of_mean(k),
        kl_median=median,
        kl_p90=float(p90),
        kl_p99=float(p99),
        kl_p999=float(p999),
        kl_max=kl_max,
        same_top1=top1,
        same_top1_se=top1_se,
        dp_mean=_mean(dp),
        dp_rms=float(np.sqrt(_mean(dp * dp))),
        log_ppl_ratio=_mean(d_nll),
        log_ppl_ratio_se=_se_of_mean(d_nll),
        reverse_kl_mean=_mean(arrays["reverse_kl"]) if "reverse_kl" in arrays else None,
        jsd_mean=_mean(arrays["jsd"]) if "jsd" in arrays else None,
        kl_bound_mean=_mean(arrays["kl_bound"]) if "kl_bound" in arrays else None,
        quantiles_of="kl lower bound" if "kl_bound" in arrays else "kl",
    )


# --------------------------------------------------------------------------- ratios, proportions


def wilson_ci(k: int, n: int, *, alpha: float = 0.05) -> CI:
    """The share ``k / n`` with Wilson's score interval (items independent; no resampling).

    centre = (k + z^2/2) / (n + z^2), half-width = z sqrt(k (n - k) / n + z^2/4) / (n + z^2), with
    z the standard normal's 1 - alpha/2 quantile. n = 0: NaN everywhere.
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return _nan_ci(0, 0, 0, alpha, "no data")
    z = float(sps.norm.ppf(1 - alpha / 2))
    centre = (k + z * z / 2) / (n + z * z)
    half = z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return CI(estimate=k / n, low=float(max(0.0, centre - half)), high=float(min(1.0, centre + half)),
              n=n, n_clusters=n, level=1 - alpha, n_resamples=0, note="Wilson score interval")
