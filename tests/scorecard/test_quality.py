"""The quality axis: Holm over the judge's signals, the self-test gate, informative missingness.

The simulation at the end draws runs in which the compressed model is exactly as good as the
baseline (the null) with three correlated signals, and counts how often each rule says ``worse``:
the old rule ("any signal distinguishable at alpha") and Holm's. Set ``JUDGE_NULL_SIMS`` for more
runs; ``-s`` prints the figures.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from judge.schemas import Answer, AnswerChoice, SingleJudgment
from judge.scorecard.data import load_run
from judge.scorecard.quality import Signals, holm_status, missingness, quality_axis
from judge.scorecard.schema import SelfTest
from judge.stats import flips, mcnemar_exact, paired_bootstrap_mean_delta, win_rate_ci
from judge.store import Run, append_jsonl


def _flips(c2i: int, i2c: int, same: int = 10):
    return flips([True] * c2i + [False] * i2c + [True] * same, [False] * c2i + [True] * i2c + [True] * same)


def _grades(delta: float, n_questions: int = 10) -> dict:
    base = [5.0, 6.0] * n_questions
    return {"baseline_grades": base, "compressed_grades": [b + delta for b in base],
            "grade_groups": [str(i // 2) for i in range(2 * n_questions)]}


def test_one_signal_at_alpha_is_not_enough_among_two() -> None:
    # flips 6 vs 0: exact McNemar p = 2 / 2^6 = 0.03125 < 0.05, so the old rule said "worse";
    # with a second signal (grades, no difference at all) Holm first tests at 0.025: not distinct
    assert _flips(6, 0).mcnemar_p == pytest.approx(0.03125)
    alone, sig = holm_status(Signals(flips=_flips(6, 0)))
    assert alone == "worse" and sig[0].level == pytest.approx(0.95)
    status, sig = holm_status(Signals(**_grades(0.0), flips=_flips(6, 0)))
    assert status == "not distinguishable"
    assert [(s.name, s.direction, s.level) for s in sig] == [
        ("grade delta", "same", pytest.approx(0.975)), ("flips", "same", pytest.approx(0.975))]


def test_step_down_tests_the_rest_at_the_larger_level() -> None:
    # every grade drops by 1: rejected at alpha/2; then the flips are tested at alpha/1 = 0.05
    status, sig = holm_status(Signals(**_grades(-1.0), flips=_flips(6, 0)))
    assert status == "worse"
    assert [(s.name, s.direction, s.level) for s in sig] == [
        ("grade delta", "worse", pytest.approx(0.975)), ("flips", "worse", pytest.approx(0.95))]
    assert sig[1].p_value == pytest.approx(0.03125)


def test_mixed_better_and_insufficient() -> None:
    assert holm_status(Signals(**_grades(1.0), flips=_flips(8, 0)))[0] == "mixed"
    assert holm_status(Signals(**_grades(0.5)))[0] == "better"
    # one question: no interval, so no signal; and no data at all
    assert holm_status(Signals(**_grades(-1.0, n_questions=1)))[0] == "insufficient data"
    assert holm_status(Signals())[0] == "insufficient data"


def test_win_rate_signal_uses_its_interval_at_the_holm_level() -> None:
    outcomes = ["baseline"] * 12 + ["tie"] * 4
    groups = [str(i) for i in range(16)]
    status, sig = holm_status(Signals(outcomes=outcomes, outcome_groups=groups, **_grades(0.0)),
                              n_resamples=500)
    direct = win_rate_ci(outcomes, groups, alpha=0.025, n_resamples=500, seed=0)
    assert sig[1].name == "win rate" and (sig[1].low, sig[1].high) == (direct.low, direct.high)
    assert status == "worse" and sig[1].null == 0.5


def _self_test(status: str) -> SelfTest:
    return SelfTest(judge="j", status=status, reason="detected 9 of 24", threshold=0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("test, imported, judged, expected, st", [
    (_self_test("failed"), False, True, "unknown", "failed"),
    (_self_test("passed"), False, True, "worse", "passed"),
    (_self_test("not run"), False, True, "worse", "not run"),
    (None, True, True, "worse", "imported"),
    (None, False, False, "unknown", "no judge"),
])
def test_the_self_test_decides_whether_quality_is_shown(test, imported, judged, expected, st) -> None:
    q = quality_axis(Signals(**_grades(-1.0)), self_test=test, imported=imported, judged=judged,
                     missing=None, alpha=0.05, seed=0, n_resamples=300)
    assert (q.status, q.self_test) == (expected, st)
    assert q.signals_status == "worse"  # what the signals say is kept either way
    assert q.recovery.estimate == pytest.approx(9 / 11)  # compressed 4.5 / baseline 5.5 per pair


def _single(q: int, role: str, status: str) -> SingleJudgment:
    ok = status == "ok"
    return SingleJudgment(question_id=q, model=f"m-{role}", judge=("j", "single"), user_prompt="",
                          judgment="", score=7 if ok else -1, turn=1, tstamp=0.0, role=role,
                          status=status, error=None if ok else "boom")


def test_informative_missingness(tmp_path: Path) -> None:
    run = Run(tmp_path)
    for role in ("baseline", "compressed"):
        append_jsonl(run.answers_path(role), [
            Answer(question_id=q, answer_id=f"{q}", model_id=f"m-{role}",
                   choices=[AnswerChoice(turns=[f"answer {q}"])], tstamp=0.0) for q in range(12)])
    # the compressed model's judgments fail on 9 items, the baseline's on 1 other one; item 11 of
    # the compressed model was never judged (missing counts as failed)
    rows = [_single(q, "baseline", "api_error" if q == 0 else "ok") for q in range(12)]
    rows += [_single(q, "compressed", "invalid_output" if 1 <= q <= 8 else "ok") for q in range(11)]
    append_jsonl(run.single_path, rows)
    m = missingness(load_run(run), "compressed", 0.05)
    assert (m.n_items, m.baseline_failed, m.compressed_failed) == (12, 1, 9)
    assert (m.only_baseline, m.only_compressed) == (1, 9)
    assert m.p_value == pytest.approx(mcnemar_exact(1, 9)) == pytest.approx(22 / 1024)
    assert m.informative
    balanced = missingness(load_run(run), "baseline", 0.05)  # a role against itself: no imbalance
    assert balanced.p_value == 1.0 and not balanced.informative


# --------------------------------------------------------------------------- simulation under the null


def _null_run(rng: np.random.Generator, n_questions: int = 40) -> Signals:
    """Two exchangeable models: same latent quality per question, independent item noise; the
    grades, the games and the correctness all read the same item noise, so they are correlated."""
    q_effect = rng.normal(0.0, 1.0, n_questions)  # (Q,)
    items = np.repeat(np.arange(n_questions), 2)  # two turns per question
    lb = q_effect[items] + rng.normal(0.0, 1.0, len(items))  # latent quality, baseline
    lc = q_effect[items] + rng.normal(0.0, 1.0, len(items))  # the same distribution: the null
    grade = lambda x: np.clip(np.round(6 + 1.5 * x), 1, 10)  # noqa: E731
    d = lc - lb + rng.normal(0.0, 0.5, len(items))
    outcomes = np.where(d > 0.6, "compressed", np.where(d < -0.6, "baseline", "tie"))
    ref = items % 2 == 0  # turn 1 is reference-graded
    cb = (lb + rng.normal(0.0, 0.3, len(items)) > 0)[ref]
    cc = (lc + rng.normal(0.0, 0.3, len(items)) > 0)[ref]
    groups = [str(i) for i in items]
    return Signals(baseline_grades=grade(lb), compressed_grades=grade(lc), grade_groups=groups,
                   outcomes=list(outcomes), outcome_groups=groups,
                   flips=flips(list(cb), list(cc)))


def _old_rule(sig: Signals, n_resamples: int, seed: int) -> str:
    """The rule before Holm: every signal at alpha; ``worse`` when the distinguishable ones all say so."""
    dirs = set()
    g = paired_bootstrap_mean_delta(sig.baseline_grades, sig.compressed_grades,
                                    groups=list(sig.grade_groups), n_resamples=n_resamples, seed=seed)
    w = win_rate_ci(list(sig.outcomes), list(sig.outcome_groups), n_resamples=n_resamples, seed=seed)  # type: ignore[arg-type]
    for ci, null in ((g, 0.0), (w, 0.5)):
        if ci.high < null:
            dirs.add("worse")
        elif ci.low > null:
            dirs.add("better")
    f = sig.flips
    if f is not None and f.n and f.mcnemar_p < 0.05:
        dirs.add("worse" if f.correct_to_incorrect > f.incorrect_to_correct else "better")
    return dirs.pop() if len(dirs) == 1 else ("mixed" if dirs else "not distinguishable")


def test_false_worse_rate_under_the_null_is_at_most_alpha() -> None:
    n_sims = int(os.environ.get("JUDGE_NULL_SIMS", "400"))
    n_resamples = 1000
    rng = np.random.default_rng(20240607)
    holm_worse = old_worse = holm_any = 0
    for i in range(n_sims):
        sig = _null_run(rng)
        status, _ = holm_status(sig, alpha=0.05, seed=i, n_resamples=n_resamples)
        holm_worse += status == "worse"
        holm_any += status != "not distinguishable"
        old_worse += _old_rule(sig, n_resamples, i) == "worse"
    rate, old, any_rate = holm_worse / n_sims, old_worse / n_sims, holm_any / n_sims
    se = math.sqrt(0.05 * 0.95 / n_sims)
    print(f"\nnull simulation, {n_sims} runs of 40 questions x 2 turns: false 'worse' "
          f"{rate:.3f} with Holm (any verdict but 'not distinguishable': {any_rate:.3f}), "
          f"{old:.3f} with the old any-signal rule; MC standard error at 0.05: {se:.3f}")
    assert rate <= 0.05 + 2 * se  # Holm: the family-wise error (any false verdict) is <= alpha
    assert any_rate <= 0.05 + 2 * se
    assert old > rate  # the old rule says "worse" more often for the same null runs
