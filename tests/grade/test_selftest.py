"""The judge's self-test end to end: `judge grade` makes the probes and judges them over real HTTP
(tests/fake_openai.py), `judge report` scores them and decides whether the quality verdict shows.

Two scripted judges: one that sees degradations (it knows the baseline's answers and grades
anything else low, naming what it sees) and one that gives every answer the same grade and ties
every game. The first passes its self-test and the quality verdict is shown; the second fails it
and quality is ``unknown``, whatever its grades say.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fake_openai import FakeOpenAIServer, Reply, completion
from judge.cli import main
from judge.grade.probes import REFUSAL
from judge.schemas import Answer, AnswerChoice, ProbeJudgment, Question, SingleJudgment
from judge.store import Run, append_jsonl, read_jsonl

STORY = ("The sun rose over the quiet valley. Birds began to sing in the tall trees. A farmer walked "
         "out to his field with a basket. By noon the work was nearly done.")


def _questions() -> list[Question]:
    out = []
    for i in range(1, 7):
        if i % 3 == 0:
            out.append(Question(question_id=i, category="math", turns=[f"What is {i} x 7?", "Add 1."],
                                reference=[f"{i * 7}", f"{i * 7 + 1}"]))
        else:
            out.append(Question(question_id=i, category="writing", turns=[f"Write story {i}.",
                                                                          "Make it shorter."]))
    return out


def _text(role: str, q: Question, turn: int) -> str:
    if q.category == "math":
        n = q.question_id * 7 + (turn - 1)
        body = f"We multiply step by step here for question {q.question_id}. The product is clear. So {n}."
    else:
        body = f"Story {q.question_id}, turn {turn}. {STORY}"
    return body if role == "baseline" else f"{body} (compressed model version)"


def make_run(root: Path) -> tuple[Run, Path, dict[tuple[str, int], str]]:
    run = Run(root)
    qs = _questions()
    qfile = root.parent / "questions.jsonl"
    qfile.write_text("".join(q.model_dump_json() + "\n" for q in qs), encoding="utf-8")
    for role in ("baseline", "compressed"):
        append_jsonl(run.answers_path(role), [
            Answer(question_id=q.question_id, answer_id=f"{role}-{q.key}", model_id=f"m-{role}",
                   choices=[AnswerChoice(turns=[_text(role, q, 1), _text(role, q, 2)])], tstamp=0.0,
                   role=role, category=q.category) for q in qs])
    from judge.questions import load_questions

    info, _ = load_questions(qfile)
    run.update_manifest(questions=info, seed=0)
    originals = {(q.turns[0], t): _text("baseline", q, t) for q in qs for t in (1, 2)}
    return run, qfile, originals


def _last_block(user: str, label: str) -> str | None:
    found = re.findall(rf"<<<BEGIN {label}[^>]*>>>\n(.*?)\n<<<END", user, re.DOTALL)
    return found[-1] if found else None


def _issues(text: str, original: str) -> list[str]:
    if text == REFUSAL:
        return ["refusal_or_safety_change"]
    parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    if len(parts) != len(set(parts)):
        return ["repetition_or_looping"]
    if original.startswith(text):
        return ["incomplete_or_truncated"]
    return ["other"]


def seeing_judge(originals: dict[tuple[str, int], str]):
    """Grades the baseline's own answer to the question and turn asked 8 and anything else 3, and
    prefers it in a game; names truncation, loops and refusals."""
    def respond(body: dict[str, Any]) -> Reply:
        user = body["messages"][-1]["content"]
        props = body["response_format"]["json_schema"]["schema"]["properties"]
        first = _last_block(user, "QUESTION") or _last_block(user, "USER TURN 1")
        turn = max([int(n) for n in re.findall(r"<<<BEGIN USER TURN (\d+)", user)] or [1])
        original = originals[(first or "", turn)]
        if "verdict" in props:
            a = _last_block(user, "ANSWER A") or _last_block(user, r"ASSISTANT A TURN \d+")
            b = _last_block(user, "ANSWER B") or _last_block(user, r"ASSISTANT B TURN \d+")
            good_a, good_b = a == original, b == original
            label = "A>B" if good_a and not good_b else "B>A" if good_b and not good_a else "A=B"
            verdict: dict[str, Any] = {
                "explanation": "one is intact", "verdict": label,
                "issues_a": [] if good_a else _issues(a or "", original),
                "issues_b": [] if good_b else _issues(b or "", original)}
        else:
            text = _last_block(user, "ANSWER") or _last_block(user, r"ASSISTANT TURN \d+") or ""
            good = text == original
            verdict = {"explanation": "graded", "issues": [] if good else _issues(text, original),
                       "rating": 8 if good else 3}
            if "correct" in props:
                verdict["correct"] = good
        return Reply(body=completion(json.dumps(verdict)))
    return respond


def flat_judge(body: dict[str, Any]) -> Reply:
    """Every answer 7, every game a tie: it cannot see anything."""
    props = body["response_format"]["json_schema"]["schema"]["properties"]
    if "verdict" in props:
        verdict: dict[str, Any] = {"explanation": "same", "issues_a": [], "issues_b": [], "verdict": "A=B"}
    else:
        verdict = {"explanation": "fine", "issues": [], "rating": 7}
        if "correct" in props:
            verdict["correct"] = True
    return Reply(body=completion(json.dumps(verdict)))


def _grade_and_report(run: Run, server: FakeOpenAIServer, *extra: str) -> dict:
    main(["grade", str(run.root), "--judge", "fake-judge", "--judge-base-url", server.base_url,
          "--no-progress", *extra])
    main(["report", str(run.root), "--resamples", "500"])
    return json.loads((run.root / "scorecard.json").read_text())


@pytest.fixture(autouse=True)
def _key(monkeypatch) -> None:
    monkeypatch.setenv("JUDGE_API_KEY", "test-key-selftest")


def test_a_judge_that_sees_passes_and_quality_is_shown(tmp_path: Path, capsys) -> None:
    run, _, originals = make_run(tmp_path / "run")
    with FakeOpenAIServer(seeing_judge(originals)) as server:
        card = _grade_and_report(run, server)
        # 6 questions x 2 turns: 24 single + 12 pairs x 2 games = 48 requests; the probes add a
        # single grade and two games each (their intact grade is the baseline's own: a cache hit)
        rows = read_jsonl(run.probes_path, ProbeJudgment)
        assert len(rows) == 24 and all(r.status == "ok" for r in rows)
        assert len(server.requests) == 48 + 3 * 24
        assert all(r.intact.usage.calls == 0 for r in rows)  # served from the judge cache
    t = card["self_test"]
    assert t["status"] == "passed" and t["judge"] == "fake-judge"
    assert (t["detected"]["k"], t["detected"]["n"]) == (24, 24)
    assert (t["graded_lower"]["k"], t["graded_lower"]["n"]) == (24, 24)
    kinds = {k["kind"]: k for k in t["kinds"]}
    assert set(kinds) >= {"truncated", "shuffled", "repetition", "wrong_number", "substituted",
                          "refusal"}
    # the script names truncation, loops and refusals rightly, and nothing else
    assert kinds["refusal"]["named"]["k"] == kinds["refusal"]["n"]
    assert kinds["repetition"]["named"]["k"] == kinds["repetition"]["n"]
    assert kinds["shuffled"]["named"]["k"] == 0
    q = card["sections"][0]["quality"]
    assert q["self_test"] == "passed" and q["status"] == "worse" == q["signals_status"]
    assert "Quality: worse" in card["verdict"] and "the judge detected 24 of 24" in card["verdict"]
    out = capsys.readouterr().out
    assert "Judge self-test (fake-judge): passed" in out


def test_a_flat_judge_fails_and_quality_is_unknown(tmp_path: Path) -> None:
    run, _, _ = make_run(tmp_path / "run")
    with FakeOpenAIServer(flat_judge) as server:
        card = _grade_and_report(run, server)
    t = card["self_test"]
    assert t["status"] == "failed"
    assert t["detected"]["k"] == 0 and t["graded_lower"]["k"] == 0 and t["n_ok"] == 24
    q = card["sections"][0]["quality"]
    assert q["status"] == "unknown" and q["self_test"] == "failed"
    assert q["signals_status"] == "not distinguishable"  # what its grades alone would have said
    assert "Quality: unknown: the judge detected 0 of 24 planted degradations" in card["verdict"]
    md = (run.root / "scorecard.md").read_text()
    assert "## Judge self-test" in md and "quality unknown" in md


def test_probes_resume_and_follow_the_mode(tmp_path: Path) -> None:
    run, _, originals = make_run(tmp_path / "run")
    with FakeOpenAIServer(seeing_judge(originals)) as server:
        main(["grade", str(run.root), "--judge", "fake-judge", "--judge-base-url", server.base_url,
              "--no-progress", "--mode", "single", "--probes", "6"])
        rows = read_jsonl(run.probes_path, ProbeJudgment)
        assert len(rows) == 6 and all(r.pair is None and r.single and r.intact for r in rows)
        n = len(server.requests)
        assert n == 24 + 6  # 24 single grades + one new grade per probe
        main(["grade", str(run.root), "--judge", "fake-judge", "--judge-base-url", server.base_url,
              "--no-progress", "--mode", "single", "--probes", "6"])
        assert len(server.requests) == n and len(read_jsonl(run.probes_path, ProbeJudgment)) == 6
        # a larger budget keeps the first probes and judges only the new ones
        main(["grade", str(run.root), "--judge", "fake-judge", "--judge-base-url", server.base_url,
              "--no-progress", "--mode", "single", "--probes", "9"])
        rows = read_jsonl(run.probes_path, ProbeJudgment)
        assert len(rows) == 9 and len({r.probe.probe_id for r in rows}) == 9
        assert len(server.requests) == n + 3
        # --probes 0: no self-test rows are made (and the old ones stay)
        main(["grade", str(run.root), "--judge", "fake-judge", "--judge-base-url", server.base_url,
              "--no-progress", "--mode", "pairwise", "--probes", "0"])
        assert len(read_jsonl(run.probes_path, ProbeJudgment)) == 9
    singles = read_jsonl(run.single_path, SingleJudgment)
    assert {r.role for r in singles} == {"baseline", "compressed"}  # probes never enter single.jsonl
