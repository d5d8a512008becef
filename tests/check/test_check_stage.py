"""The check stage over a run folder, resumability, the CLI, and what the scorecard makes of it:
checked flips, checked accuracy, the judge's accuracy against the checker, flagged items, reports.
Every number is computed by hand in the module's table below."""

from __future__ import annotations

import json
import time
from pathlib import Path

from judge.check import check_run
from judge.schemas import Answer, AnswerChoice, CheckResult, SingleJudgment
from judge.questions import load_questions
from judge.store import Run, append_jsonl, read_jsonl

# Every turn's check: the number 4. C = correct by the checker.
#   item      (1,1) (1,2) (2,1) (2,2) (3,1) (3,2)
#   baseline    C     C     C     -     -     C
#   compressed  C     -     C     C     -     -
#   judge(cmp)  C     C     C     -     -     -      -> agrees with the checker on 4 of 6
# flips: correct->incorrect (1,2), (3,2); incorrect->correct (2,2); n = 6, 50 %.
ANSWERS = {
    "baseline": {1: ["The answer is 4.", "So the answer is 4."], 2: ["Answer: 4", "The answer is 5."],
                 3: ["answer: 3", "\\boxed{4}"]},
    "compressed": {1: ["The answer is 4.", "The answer is 3."], 2: ["Answer: 4", "It is 4."],
                   3: ["answer: 3", "The answer is 7."]},
}
JUDGED = {(1, 1): True, (1, 2): True, (2, 1): True, (2, 2): False, (3, 1): False, (3, 2): False}


def make_run(root: Path) -> Run:
    qfile = root.parent / "qs.jsonl"
    check = {"kind": "number", "value": "4"}
    qfile.write_text("".join(json.dumps({"question_id": q, "category": "math", "turns": ["a?", "b?"],
                                         "reference": ["4", "4"], "check": [check, check]}) + "\n"
                             for q in (1, 2, 3)), encoding="utf-8")
    run = Run(root)
    run.update_manifest(questions=load_questions(qfile)[0])  # as `judge generate` records it
    for role, by_q in ANSWERS.items():
        append_jsonl(run.answers_path(role), [
            Answer(question_id=q, answer_id=f"{role}{q}", model_id=role, tstamp=0.0, role=role,
                   choices=[AnswerChoice(turns=turns)], category="math") for q, turns in by_q.items()])
    return run


def judged(run: Run) -> None:
    append_jsonl(run.single_path, [
        SingleJudgment(question_id=q, model="compressed", judge=("fake", "single-ref"), user_prompt="p",
                       judgment="j", score=5, turn=t, tstamp=time.time(), role="compressed",
                       correct=ok) for (q, t), ok in JUDGED.items()])


def test_stage_writes_checks_and_resumes(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    first = {s.role: s for s in check_run(run)}
    assert (first["baseline"].checked, first["baseline"].passed, first["baseline"].failed) == (6, 4, 2)
    assert (first["compressed"].checked, first["compressed"].passed) == (6, 3)
    rows = read_jsonl(run.root / "checks" / "compressed.jsonl", CheckResult)
    assert [(r.question_id, r.turn, r.status, r.extracted) for r in rows][:2] == [
        (1, 1, "pass", "4"), (1, 2, "fail", "3")]
    again = check_run(run)
    assert [(s.checked, s.skipped) for s in again] == [(0, 6), (0, 6)]
    assert len(read_jsonl(run.root / "checks" / "compressed.jsonl", CheckResult)) == 6
    # a regenerated answer (a new answer_id, appended last) is checked again; the last row wins
    append_jsonl(run.answers_path("compressed"), [
        Answer(question_id=1, answer_id="again", model_id="compressed", tstamp=1.0, role="compressed",
               choices=[AnswerChoice(turns=["The answer is 5.", "The answer is 4."])])])
    third = {s.role: s for s in check_run(run, ["compressed"])}
    assert (third["compressed"].checked, third["compressed"].passed, third["compressed"].skipped) == (2, 1, 4)


def test_scorecard_checked_flips_and_judge_accuracy(tmp_path: Path) -> None:
    from rich.console import Console

    from judge.report.html import render_html
    from judge.report.markdown import render_markdown
    from judge.report.terminal import print_scorecard
    from judge.scorecard import build_report

    run = make_run(tmp_path / "run")
    judged(run)
    check_run(run)
    card, flagged = build_report(run, n_resamples=200, min_questions=1)
    sec = card.sections[0]
    f = sec.checked_flips
    assert f is not None
    assert (f.n, f.correct_to_incorrect, f.incorrect_to_correct, f.both_correct, f.both_incorrect) == (6, 2, 1, 2, 1)
    assert f.flip_percent == 50.0 and f.baseline_accuracy == 4 / 6 and f.compressed_accuracy == 3 / 6
    assert f.mcnemar_items_p == 1.0  # exact two-sided binomial, 2 vs 1
    assert sec.judge_accuracy is not None and sec.judge_accuracy.estimate == 4 / 6
    assert sec.judge_accuracy.n == 6 and sec.judge_accuracy.n_clusters == 3
    assert sec.behaviour.checked_flips == f
    assert "checked by code (not by the judge)" in sec.verdict.text
    by_item = {(it.question_id, it.turn): it for it in flagged}
    assert by_item[("1", 2)].checked_flip == "correct_to_incorrect" and "checked_flip" in by_item[("1", 2)].reasons
    assert by_item[("2", 2)].checked_flip == "incorrect_to_correct"
    assert "correctness_flip" not in by_item[("2", 2)].reasons  # the checker decides, not the judge
    md = render_markdown(card, flagged)
    assert "Checked flips (answers checked by code, no judge)" in md
    assert "agree with the checker" in md
    [row] = card.summary
    assert (row.flip_percent, row.flips_n, row.flips_from) == (50.0, 6, "checker")
    assert "Checked flips (answers checked by code, no judge)" in render_html(card, flagged)
    console = Console(record=True, width=200)
    print_scorecard(card, console)
    assert "Checked flips (by code, no judge; n=6, 0 undecided)" in console.export_text()
    # the scorecard JSON still reads back, and one written before this issue (no new fields) too
    from judge.scorecard import Scorecard

    data = json.loads(card.model_dump_json())
    assert Scorecard.model_validate(data).model_dump_json() == card.model_dump_json()
    for s in data["sections"]:
        s.pop("checked_flips"), s.pop("judge_accuracy")
    assert Scorecard.model_validate(data).sections[0].judge_accuracy is None


def test_cli_check(tmp_path: Path, capsys) -> None:
    import pytest

    from judge.cli import main

    run = make_run(tmp_path / "run")
    main(["check", str(run.root)])
    out = capsys.readouterr().out
    assert "checks/compressed: 6 checked (3 pass, 3 fail, 0 error), 0 already there" in out
    assert "sandbox network isolation:" in out
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(tmp_path / "nope")])
    assert exit_.value.code == 2
    assert "run folder not found" in capsys.readouterr().err
