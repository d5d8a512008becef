"""The behaviour axis on hand-made runs: identity, first difference, the noise floor, sampling, KL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from judge.schemas import Answer, AnswerChoice, KLSummary, SamplingSpec, TurnDivergence
from judge.scorecard.behaviour import answer_diffs, behaviour_axis
from judge.scorecard.build import build_scorecard
from judge.scorecard.data import load_run
from judge.stats import FlipCounts, bootstrap_ratio_ci
from judge.store import Run, append_jsonl

KW = {"alpha": 0.05, "seed": 0, "n_resamples": 400}


def write_answers(run: Run, role: str, ids: dict[str, list[list[int]]], *,
                  temperature: float | None = 0.0, with_ids: bool = True) -> None:
    """One answer per question; the text of a turn spells its token ids."""
    append_jsonl(run.answers_path(role), [
        Answer(question_id=q, answer_id=f"{role}-{q}", model_id=f"m-{role}",
               choices=[AnswerChoice(turns=[" ".join(map(str, t)) for t in turns])], tstamp=0.0,
               role=role, token_ids=turns if with_ids else None,
               sampling=None if temperature is None else SamplingSpec(temperature=temperature))
        for q, turns in ids.items()])


BASE = {"1": [[1, 2, 3, 4], [5, 6]], "2": [[7, 8, 9], [10, 11, 12]], "3": [[1, 1], [2, 2]]}


def test_first_difference_by_token_ids(tmp_path: Path) -> None:
    run = Run(tmp_path)
    write_answers(run, "baseline", BASE)
    # q1 t1 differs at token 3; q1 t2 is a prefix (differs at 3 = one past the shorter);
    # q2 identical; q3 t1 differs at token 1, t2 is longer (differs at 3)
    write_answers(run, "compressed", {"1": [[1, 2, 9, 4], [5, 6, 7]], "2": [[7, 8, 9], [10, 11, 12]],
                                      "3": [[0, 1], [2, 2, 2]]})
    diffs = answer_diffs(load_run(run), "compressed")
    got = {k: (d.identical, d.first_diff, d.unit, d.greedy) for k, d in diffs.items()}
    assert got == {("1", 1): (False, 3, "token", True), ("1", 2): (False, 3, "token", True),
                   ("2", 1): (True, None, "token", True), ("2", 2): (True, None, "token", True),
                   ("3", 1): (False, 1, "token", True), ("3", 2): (False, 3, "token", True)}
    b = behaviour_axis(load_run(run), "compressed", **KW)
    assert (b.status, b.rule, b.n_answers, b.n_identical) == ("changed", "exact identity", 6, 2)
    assert b.first_diff_median == 3.0 and b.first_diff_unit == "token"  # median of 3, 3, 1, 3
    assert b.compared_by == "token ids" and b.greedy is True


def test_identical_answers_are_unchanged_baseline_against_itself(tmp_path: Path) -> None:
    run = Run(tmp_path)
    write_answers(run, "baseline", BASE)
    write_answers(run, "compressed", BASE)
    b = behaviour_axis(load_run(run), "compressed", **KW)
    assert (b.status, b.n_identical, b.first_diff_median) == ("unchanged", 6, None)
    assert "every answer is identical" in b.reason


def test_sampled_or_unrecorded_answers_that_differ_are_unknown(tmp_path: Path) -> None:
    run = Run(tmp_path / "sampled")
    write_answers(run, "baseline", BASE, temperature=0.7)
    write_answers(run, "compressed", {**BASE, "2": [[7, 8, 0], [10, 11, 12]]}, temperature=0.7)
    b = behaviour_axis(load_run(run), "compressed", **KW)
    assert b.status == "unknown" and b.greedy is False and "sampled" in b.reason
    # identical sampled answers are still unchanged
    run2 = Run(tmp_path / "same")
    write_answers(run2, "baseline", BASE, temperature=0.7)
    write_answers(run2, "compressed", BASE, temperature=0.7)
    assert behaviour_axis(load_run(run2), "compressed", **KW).status == "unchanged"
    # imported answers: no decoding, no token ids: compared as text, first difference in characters
    run3 = Run(tmp_path / "imported")
    write_answers(run3, "baseline", BASE, temperature=None, with_ids=False)
    write_answers(run3, "compressed", {**BASE, "1": [[1, 2, 3, 4], [5, 9]]}, temperature=None,
                  with_ids=False)
    b = behaviour_axis(load_run(run3), "compressed", **KW)
    assert (b.status, b.greedy, b.compared_by) == ("unknown", None, "text")
    assert (b.first_diff_median, b.first_diff_unit) == (3.0, "character")  # "5 6" vs "5 9"


def _questions(n: int) -> dict[str, list[list[int]]]:
    return {str(q): [[q, 1, 2], [q, 3, 4]] for q in range(1, n + 1)}


def test_noise_floor_sign_test_by_hand(tmp_path: Path) -> None:
    base = _questions(8)
    run = Run(tmp_path)
    write_answers(run, "baseline", base)
    # compressed differs on questions 1-7 (turn 2 only for 7), the control on question 8 only
    comp = {q: ([[9] + t[0][1:], t[1]] if int(q) < 7 else [t[0], [0]] if q == "7" else t)
            for q, t in base.items()}
    ctrl = {q: ([t[0], [0, 0]] if q == "8" else t) for q, t in base.items()}
    write_answers(run, "compressed", comp)
    write_answers(run, "control", ctrl)
    b = behaviour_axis(load_run(run), "compressed", **KW)
    # b = 7 questions where only the compressed model differs, c = 1 only the control: P(X >= 7)
    p = sps.binom.sf(6, 8, 0.5)
    assert (b.rule, b.n_questions, b.beyond_floor, b.below_floor) == ("noise floor", 8, 7, 1)
    assert b.sign_test_p == pytest.approx(p) == pytest.approx(9 / 256)
    assert b.status == "changed" and (b.control_n_answers, b.control_n_identical) == (16, 15)
    # 5 against 3 is within the floor: P(X >= 5 | 8) = 93/256 = 0.36
    run2 = Run(tmp_path / "within")
    write_answers(run2, "baseline", base)
    write_answers(run2, "compressed", {q: ([[0], t[1]] if int(q) <= 5 else t) for q, t in base.items()})
    write_answers(run2, "control", {q: ([[0], t[1]] if int(q) >= 6 else t) for q, t in base.items()})
    b2 = behaviour_axis(load_run(run2), "compressed", **KW)
    assert (b2.beyond_floor, b2.below_floor) == (5, 3)
    assert b2.sign_test_p == pytest.approx(93 / 256) and b2.status == "unchanged"
    # the control's own section is judged by identity (no floor under the floor)
    assert behaviour_axis(load_run(run2), "control", **KW).rule == "exact identity"


def test_kl_and_top1_are_token_weighted_with_question_clusters(tmp_path: Path) -> None:
    run = Run(tmp_path)
    write_answers(run, "baseline", BASE)
    write_answers(run, "compressed", BASE)
    rows = {("1", 1): (10, 0.2, 0.9), ("1", 2): (30, 0.1, 0.8), ("2", 1): (20, 0.05, 1.0),
            ("3", 1): (40, 0.4, 0.5)}
    append_jsonl(run.divergence_dir / "compressed.jsonl", [
        TurnDivergence(question_id=q, category="x", turn=t, role="compressed", stats=KLSummary(
            n_tokens=n, kl_mean=kl, kl_se=0, kl_median=kl, kl_p90=kl, kl_p99=kl, kl_p999=kl,
            kl_max=kl, same_top1=top1, same_top1_se=0, dp_mean=0, dp_rms=0.1, log_ppl_ratio=0,
            log_ppl_ratio_se=0)) for (q, t), (n, kl, top1) in rows.items()])
    b = behaviour_axis(load_run(run), "compressed", **KW)
    # (10 * 0.2 + 30 * 0.1 + 20 * 0.05 + 40 * 0.4) / 100 = 22 / 100
    assert b.kl_mean.estimate == pytest.approx(0.22)
    assert b.same_top1.estimate == pytest.approx((9 + 24 + 20 + 20) / 100)
    n = np.array([10, 30, 20, 40.0])
    direct = bootstrap_ratio_ci(n * np.array([0.2, 0.1, 0.05, 0.4]), n, ["1", "1", "2", "3"],
                                seed=0, n_resamples=400)
    assert b.kl_mean == direct and b.kl_mean.n_clusters == 3
    # identical answers stay unchanged whatever the KL: KL never decides without a floor
    assert b.status == "unchanged"


def test_checked_flips_are_reported_with_a_wilson_interval(tmp_path: Path) -> None:
    run = Run(tmp_path)
    write_answers(run, "baseline", BASE)
    write_answers(run, "compressed", BASE)
    fl = FlipCounts(n=20, n_dropped=0, correct_to_incorrect=3, incorrect_to_correct=1,
                    both_correct=10, both_incorrect=6, flip_percent=20.0, baseline_accuracy=0.65,
                    compressed_accuracy=0.55, mcnemar_p=0.625)
    b = behaviour_axis(load_run(run), "compressed", checked_flips=fl, **KW)
    ref = sps.binomtest(4, 20).proportion_ci(method="wilson")
    assert b.flip_rate.estimate == pytest.approx(0.2)
    assert (b.flip_rate.low, b.flip_rate.high) == (pytest.approx(ref.low), pytest.approx(ref.high))


def test_scorecard_of_a_run_without_judgments_has_behaviour_and_no_quality(tmp_path: Path) -> None:
    """What `judge compare --judge none` reports: the behaviour axis, quality unknown (no judge)."""
    run = Run(tmp_path)
    write_answers(run, "baseline", BASE)
    write_answers(run, "compressed", {**BASE, "3": [[1, 2], [2, 2]]})
    card = build_scorecard(run, n_resamples=200)
    sec = card.sections[0]
    assert sec.behaviour.status == "changed" and sec.behaviour.n_answers == 6
    assert (sec.quality.status, sec.quality.self_test) == ("unknown", "no judge")
    assert card.self_test is None
    assert card.verdict.startswith("compressed: Behaviour changed: 1 of 6 answers differ from the "
                                   "baseline's (first difference at token 2, median).")
    assert "Quality: unknown: no judge was run." in card.verdict
