"""Flagged responses always show where the models differ: the ``diverged`` reason, ranked after
regressions, by KL mass then the earliest first difference; identical answers never."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge.schemas import (Answer, AnswerChoice, KLSummary, SamplingSpec, SingleJudgment,
                           SingleVerdict, TurnDivergence)
from judge.scorecard.build import build_report, review_items
from judge.scorecard.flagged import diverged_count
from judge.store import Run, append_jsonl


def test_diverged_count() -> None:
    assert [diverged_count(n) for n in (0, 4, 16, 30, 31, 160)] == [3, 3, 3, 3, 4, 10]


def _answer(role: str, q: int, ids: list[int]) -> Answer:
    return Answer(question_id=q, answer_id=f"{role}{q}", model_id=f"m-{role}",
                  choices=[AnswerChoice(turns=[" ".join(map(str, ids))])], tstamp=0.0, role=role,
                  token_ids=[ids], sampling=SamplingSpec())


def _div(q: int, n: int, kl: float) -> TurnDivergence:
    return TurnDivergence(question_id=q, category="writing", turn=1, role="compressed", stats=KLSummary(
        n_tokens=n, kl_mean=kl, kl_se=0, kl_median=kl, kl_p90=kl, kl_p99=kl, kl_p999=kl, kl_max=kl,
        same_top1=1.0, same_top1_se=0, dp_mean=0, dp_rms=0, log_ppl_ratio=0, log_ppl_ratio_se=0))


def _grade(q: int, role: str, score: int) -> SingleJudgment:
    return SingleJudgment(question_id=q, model=f"m-{role}", judge=("j", "single"), user_prompt="",
                          judgment="", score=score, turn=1, tstamp=0.0, role=role,
                          verdict=SingleVerdict(explanation="", rating=score))


@pytest.fixture()
def run(tmp_path: Path) -> Run:
    """Ten one-turn questions. Compressed answers differ on 1-7 (first difference at token
    q % 3 + 1), are identical on 8-10. KL mass (tokens x mean): q1 2.0, q2 6.0, q3 6.0, q4 1.0,
    q5 0.5, q6 0.1, q7 none (no divergence row), q8 100 (identical answer!), q9 0, q10 0.
    The judge graded q5 3 points lower for the compressed model (a regression)."""
    run = Run(tmp_path)
    base = {q: [q, 10, 11, 12] for q in range(1, 11)}
    comp = {q: (ids[:q % 3] + [99] + ids[q % 3 + 1:] if q <= 7 else ids) for q, ids in base.items()}
    append_jsonl(run.answers_path("baseline"), [_answer("baseline", q, ids) for q, ids in base.items()])
    append_jsonl(run.answers_path("compressed"), [_answer("compressed", q, ids) for q, ids in comp.items()])
    masses = {1: (10, 0.2), 2: (20, 0.3), 3: (30, 0.2), 4: (10, 0.1), 5: (10, 0.05), 6: (10, 0.01),
              8: (10, 10.0), 9: (10, 0.0), 10: (10, 0.0)}
    append_jsonl(run.divergence_dir / "compressed.jsonl", [_div(q, n, kl) for q, (n, kl) in masses.items()])
    append_jsonl(run.single_path, [_grade(q, "baseline", 8) for q in base]
                 + [_grade(q, "compressed", 5 if q == 5 else 8) for q in base])
    return run


def test_diverged_items_follow_the_regressions(run: Run) -> None:
    card, flagged = build_report(run, n_resamples=100, tokens=False)
    got = [(f.rank, f.question_id, f.reasons, f.kl_mass, f.first_diff) for f in flagged]
    # 10 answers compared -> 3 diverged flags: the most KL mass among the 7 that differ: q2 and q3
    # (6.0 each; q3 first differs at token 1, q2 at token 3: the earlier first) then q1 (2.0); q8's
    # mass is larger but its answer is identical. q5 is flagged for its grade drop only.
    assert got == [
        (1, "5", ["grade_drop"], pytest.approx(0.5), 3),
        (2, "3", ["diverged"], pytest.approx(6.0), 1),
        (3, "2", ["diverged"], pytest.approx(6.0), 3),
        (4, "1", ["diverged"], pytest.approx(2.0), 2),
    ]
    assert all(f.severity == 0 for f in flagged[1:]) and flagged[0].severity == 3
    assert flagged[1].answers_identical is False and flagged[1].first_diff_unit == "token"
    assert card.sections[0].n_flagged == 4


def test_review_shows_the_diverged_items_and_every_turn_of_a_question(run: Run) -> None:
    items = review_items(run, limit=None)
    assert [i.question_id for i in items] == ["5", "3", "2", "1"]
    view = review_items(run, question="8")
    assert len(view) == 1 and view[0].reasons == [] and view[0].answers_identical is True
    assert view[0].kl_mass == pytest.approx(100.0)


def test_identical_answers_flag_nothing(tmp_path: Path) -> None:
    run = Run(tmp_path)
    for role in ("baseline", "compressed"):
        append_jsonl(run.answers_path(role), [_answer(role, q, [q, 1, 2]) for q in range(1, 6)])
    append_jsonl(run.divergence_dir / "compressed.jsonl", [_div(q, 10, 0.5) for q in range(1, 6)])
    _, flagged = build_report(run, n_resamples=100, tokens=False)
    assert flagged == []
