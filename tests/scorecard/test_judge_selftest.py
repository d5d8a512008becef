"""Scoring the judge's self-test from hand-made probe rows: counts, Wilson bounds, the threshold."""

from __future__ import annotations

from pathlib import Path

import pytest
from scipy import stats as sps

from judge.schemas import (Answer, AnswerChoice, PairGame, PairJudgment, PairVerdict, Probe,
                           ProbeJudgment, SingleJudgment, SingleVerdict)
from judge.scorecard.data import load_run
from judge.scorecard.selftest import self_test
from judge.store import Run, append_jsonl

KINDS = ["truncated", "shuffled", "repetition", "wrong_number", "substituted", "refusal"]
EXPECTED = {"truncated": "incomplete_or_truncated", "shuffled": "incoherent",
            "repetition": "repetition_or_looping", "wrong_number": "reasoning_or_math_error",
            "substituted": "instruction_not_followed", "refusal": "refusal_or_safety_change"}


def _single(score: int, issues: list[str] | None = None, status: str = "ok",
            judge: str = "j") -> SingleJudgment:
    ok = status == "ok"
    return SingleJudgment(question_id=1, model="m", judge=(judge, "single"), user_prompt="",
                          judgment="", score=score if ok else -1, turn=1, tstamp=0.0, role="probe",
                          status=status,
                          verdict=SingleVerdict(explanation="", issues=issues or [], rating=score) if ok else None)


def _pair(g1: str, g2: str, issues_probe: list[str] | None = None, judge: str = "j") -> PairJudgment:
    """g1: label with the intact answer at A; g2: with the probe at A."""
    def game(a: str, b: str, label: str) -> PairGame:
        side = a if label.startswith("A>") else b if label.startswith("B>") else "tie"
        winner = "tie" if side == "tie" else ("baseline" if side == "baseline" else "compressed")
        ia = issues_probe if a == "probe" else []
        ib = issues_probe if b == "probe" else []
        return PairGame(a_role=a, b_role=b, user_prompt="", judgment="", status="ok",
                        verdict=PairVerdict(explanation="", issues_a=ia or [], issues_b=ib or [],
                                            verdict=label), winner=winner)
    games = [game("baseline", "probe", g1), game("probe", "baseline", g2)]
    consistent = games[0].winner == games[1].winner
    return PairJudgment(question_id=1, model_1="m", model_2="m+probe", g1_winner="tie",
                        g2_winner="tie", judge=(judge, "pair"), g1_user_prompt="", g1_judgment="",
                        g2_user_prompt="", g2_judgment="", turn=1, tstamp=0.0, role_1="baseline",
                        role_2="probe", games=games, status="ok",
                        winner=games[0].winner if consistent else "tie", consistent=consistent)


def _row(i: int, kind: str, *, detected: bool, lower: bool, named: bool = False,
         status: str = "ok", judge: str = "j") -> ProbeJudgment:
    probe = Probe(probe_id=f"{kind}:{i}:1", kind=kind, question_id=i, turn=1,  # type: ignore[arg-type]
                  expected_issues=[EXPECTED[kind]], text="x")
    issues = [EXPECTED[kind]] if named else ["other"]
    pair = _pair("A>B", "B>A", issues, judge) if detected else _pair("A>B", "A>B", issues, judge)
    return ProbeJudgment(probe=probe, judge=judge, mode="both", tstamp=0.0, status=status,  # type: ignore[arg-type]
                         single=_single(3 if lower else 7, issues, judge=judge),
                         intact=_single(7, judge=judge), pair=pair)


def _run(tmp_path: Path, rows: list[ProbeJudgment]) -> Run:
    run = Run(tmp_path)
    append_jsonl(run.answers_path("baseline"), [Answer(question_id=1, answer_id="a", model_id="m",
                                                       choices=[AnswerChoice(turns=["x"])], tstamp=0.0)])
    append_jsonl(run.single_path, [_single(7).model_copy(update={"role": "baseline"})])
    append_jsonl(run.probes_path, rows)
    return run


def test_a_judge_that_grades_everything_alike_fails(tmp_path: Path) -> None:
    rows = [_row(i, KINDS[i % 6], detected=False, lower=False) for i in range(24)]
    t = self_test(load_run(_run(tmp_path, rows)))
    assert t.status == "failed" and (t.n_probes, t.n_ok, t.n_failed) == (24, 24, 0)
    assert (t.detected.k, t.graded_lower.k, t.named.k) == (0, 0, 0)
    assert t.detected.high == pytest.approx(sps.binomtest(0, 24).proportion_ci(method="wilson").high)
    assert [k.kind for k in t.kinds] == KINDS and all(k.n == 4 for k in t.kinds)
    assert "detected in both orders 0 of 24" in t.reason


@pytest.mark.parametrize("k, status", [(17, "passed"), (16, "failed")])
def test_the_threshold_is_on_the_wilson_lower_bound(tmp_path: Path, k: int, status: str) -> None:
    # Wilson lower bounds: 17/24 -> 0.508, 16/24 -> 0.467; the default threshold is 0.5
    rows = [_row(i, KINDS[i % 6], detected=i < k, lower=True, named=i % 2 == 0) for i in range(24)]
    t = self_test(load_run(_run(tmp_path, rows)))
    ref = sps.binomtest(k, 24).proportion_ci(method="wilson")
    assert (t.detected.k, t.detected.low) == (k, pytest.approx(ref.low))
    assert t.graded_lower.k == 24 and t.named.k == 12
    assert t.status == status and t.threshold == 0.5
    assert self_test(load_run(_run(tmp_path / "strict", rows)), threshold=0.9).status == "failed"


def test_per_kind_counts_and_naming(tmp_path: Path) -> None:
    rows = [_row(0, "truncated", detected=True, lower=True, named=True),
            _row(1, "truncated", detected=True, lower=False, named=False),
            _row(2, "refusal", detected=False, lower=True, named=True)]
    t = self_test(load_run(_run(tmp_path, rows)), threshold=0.0)
    kinds = {k.kind: (k.n, k.detected.k, k.graded_lower.k, k.named.k) for k in t.kinds}
    assert kinds == {"truncated": (2, 2, 1, 1), "refusal": (1, 0, 1, 1)}
    assert t.status == "passed"  # a threshold of 0 passes anything measured


def test_failed_probe_judgments_are_not_counted_and_latest_row_wins(tmp_path: Path) -> None:
    rows = [_row(i, "truncated", detected=True, lower=True) for i in range(4)]
    failed = _row(0, "truncated", detected=False, lower=False).model_copy(update={"status": "api_error"})
    rows.append(failed)  # a later row for probe 0 that failed: it counts, as a failure
    rows.append(_row(9, "refusal", detected=False, lower=False, judge="other-judge"))  # ignored
    t = self_test(load_run(_run(tmp_path, rows)), threshold=0.0)
    assert (t.n_probes, t.n_ok, t.n_failed, t.detected.n) == (4, 3, 1, 3)
    assert t.judge == "j" and "1 probe judgments failed" in t.reason
    only_failed = self_test(load_run(_run(tmp_path / "f", [failed])))
    assert only_failed.status == "failed" and "none of the 1 probe judgments succeeded" in only_failed.reason


def test_no_probe_rows_means_not_run(tmp_path: Path) -> None:
    t = self_test(load_run(_run(tmp_path, [])))
    assert t.status == "not run" and t.detected is None
