"""Coverage of the scorecard's intervals, measured by simulation.

Many data sets are drawn from a model whose true mean is known; the share of intervals that contain
it is the coverage. The scorecard's interval (`judge.stats`, ``method="expanded"``, questions as
clusters, two turns per question) must cover about 95% at the smallest row that gets an interval
(`MIN_QUESTIONS_FOR_INTERVAL` questions) and at judge-80's size (80 questions, the overall row).
The plain percentile interval is measured the same way to show that the check can fail: it falls
well short with few questions.

Everything is seeded, so the figures are the same on every run (measured: 0.936 for grades and
0.947 for wins at 8 questions, 0.943 and 0.955 at 80; the plain percentile interval 0.885 for
grades at 8). With 2,000 simulated data sets the Monte Carlo SE is 0.005, so the band 0.93-0.97 is
+-4 SE around 95%: another seed passes too unless the interval itself changes. ~8 s in all.
"""

from __future__ import annotations

import numpy as np
import pytest

from judge.stats import MIN_QUESTIONS_FOR_INTERVAL, IntervalMethod, paired_bootstrap_mean_delta

N_DATASETS = 2000
N_RESAMPLES = 1000


def grade_deltas(rng: np.random.Generator, n_questions: int) -> tuple[np.ndarray, float]:
    """(G, 2) integer grade deltas in [-9, 9]: a shared per-question shift plus per-turn noise,
    rounded; true mean 0 by symmetry."""
    u = rng.normal(size=(n_questions, 1))
    e = rng.normal(size=(n_questions, 2))
    return np.clip(np.round(1.2 * u + 1.2 * e), -9, 9), 0.0


def win_scores(rng: np.random.Generator, n_questions: int) -> tuple[np.ndarray, float]:
    """(G, 2) pairwise scores 1 / 0.5 / 0: ties 30% of the time, else a win with a per-question
    probability p ~ U(0, 1); true mean 0.3 * 0.5 + 0.7 * E[p] = 0.5."""
    p = rng.random((n_questions, 1))
    win = (rng.random((n_questions, 2)) < p).astype(float)
    return np.where(rng.random((n_questions, 2)) < 0.3, 0.5, win), 0.5


def coverage(model, n_questions: int, method: IntervalMethod, seed: int) -> float:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_questions), 2)
    hits = 0
    for i in range(N_DATASETS):
        x, truth = model(rng, n_questions)
        flat = x.ravel()  # (2G,) question-major: both turns of a question are neighbours
        ci = paired_bootstrap_mean_delta(np.zeros_like(flat), flat, groups=groups,
                                         n_resamples=N_RESAMPLES, seed=i, method=method,
                                         min_clusters=MIN_QUESTIONS_FOR_INTERVAL)
        hits += ci.low <= truth <= ci.high
    return hits / N_DATASETS


@pytest.mark.parametrize("model", [grade_deltas, win_scores], ids=["grades", "wins"])
@pytest.mark.parametrize("n_questions", [MIN_QUESTIONS_FOR_INTERVAL, 80])
def test_scorecard_interval_covers_95_percent(model, n_questions: int) -> None:
    got = coverage(model, n_questions, "expanded", seed=n_questions)
    assert 0.93 <= got <= 0.97, f"coverage {got:.3f} with {n_questions} questions"


def test_percentile_interval_falls_short_with_few_questions() -> None:
    # the interval the scorecard printed before, on the same data: ~90% at 8 questions
    got = coverage(grade_deltas, MIN_QUESTIONS_FOR_INTERVAL, "percentile", seed=8)
    assert got < 0.92, f"coverage {got:.3f}"
