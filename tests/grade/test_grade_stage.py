"""The grade stage: rows, swap mapping, failure statuses, resume; and grade_run over real HTTP."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fake_openai import FakeOpenAIServer, Reply, completion, default_responder
from judge.errors import ConfigError, JudgeEndpointError, JudgeSpecError, RunFolderError
from judge.grade.stage import (final_counts, grade_plan, grade_run, latest_pairwise, latest_single,
                           plan_grading, run_questions)
from judge.grade.server import free_port
from judge.grade.client import ClientStats, JudgeResult
from judge.grade.prompts import load_prompt_set, render_single
from judge.schemas import (Answer, AnswerChoice, PairJudgment, PairVerdict, Question,
                           SingleJudgment, SingleVerdict, SingleVerdictWithReference,
                           Usage)
from judge.store import Run, append_jsonl, read_jsonl

QUESTIONS = [
    Question(question_id=1, category="writing", turns=["Describe rain.", "Now describe snow."]),
    Question(question_id=2, category="math", turns=["What is 6*7?", "Add 8 to it."],
             reference=["42", "50"]),
]


def make_run(root: Path, roles: dict[str, str] | None = None) -> Run:
    """A run with answers for both questions; each role's text carries a marker word."""
    run = Run(root)
    roles = roles or {"baseline": "GOOD", "compressed": "POOR"}
    for role, word in roles.items():
        rows = [Answer(question_id=q.question_id, answer_id=f"{role}-{q.key}", model_id=f"m-{role}",
                       choices=[AnswerChoice(turns=[f"{word} answer {q.key}.{t}" for t in (1, 2)])],
                       tstamp=0.0, role=role, category=q.category) for q in QUESTIONS]
        append_jsonl(run.answers_path(role), rows)
    return run


def graded_text(user: str, label: str) -> str:
    """The fenced block whose label starts with ``label`` and is the last of its kind."""
    blocks = re.findall(rf"<<<BEGIN {label}[^>]*>>>\n(.*?)\n<<<END", user, re.DOTALL)
    return blocks[-1]


def shown_as_a(user: str) -> str:
    return graded_text(user, "ANSWER A" if "<<<BEGIN ANSWER A" in user else "ASSISTANT A TURN")


class FakeJudge:
    """A JudgeClient that prefers GOOD over POOR, or always says A>B (position bias)."""

    model = "fake-judge"

    def __init__(self, *, biased: bool = False, fail: set[str] | None = None):
        self.biased = biased
        self.fail = fail or set()  # substrings of the user prompt that make the call fail
        self.stats = ClientStats()
        self.prompts: list[str] = []

    async def judge(self, messages: list[dict[str, str]], schema: type) -> JudgeResult:
        user = messages[-1]["content"]
        self.prompts.append(user)
        self.stats.calls += 1
        usage = Usage(prompt_tokens=100, completion_tokens=10, calls=1)
        for marker in self.fail:
            if marker in user:
                status = "api_error" if marker.startswith("POOR") else "invalid_output"
                return JudgeResult(status, None, "garbage", f"failed on {marker}", usage, 3)  # type: ignore[arg-type]
        if schema is PairVerdict:
            a = shown_as_a(user)
            label = "A>B" if self.biased else ("A>>B" if "GOOD" in a else "B>>A")
            v: Any = PairVerdict(explanation="x", verdict=label, issues_b=["other"])  # type: ignore[arg-type]
        else:
            ans = graded_text(user, "ANSWER" if "<<<BEGIN ANSWER" in user else "ASSISTANT TURN")
            rating = 8 if "GOOD" in ans else 3
            if schema is SingleVerdictWithReference:
                v = SingleVerdictWithReference(explanation="x", rating=rating, correct="GOOD" in ans)
            else:
                v = SingleVerdict(explanation="x", rating=rating)
        return JudgeResult("ok", v, v.model_dump_json(), None, usage, 1)

    async def aclose(self) -> None:
        return None


def grade(run: Run, judge: FakeJudge, mode: str = "both", roles: list[str] | None = None) -> Any:
    prompts = load_prompt_set()
    plan = plan_grading(run, QUESTIONS, judge.model, mode=mode, roles=roles, prompts=prompts)  # type: ignore[arg-type]
    return asyncio.run(grade_plan(run, judge, plan, prompts))


def test_single_rows(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    summary = grade(run, FakeJudge(), mode="single")
    rows = read_jsonl(run.single_path, SingleJudgment)
    assert summary.single == Counter(ok=8) and len(rows) == 8 and not run.pairwise_path.exists()
    by = {(r.role, str(r.question_id), r.turn): r for r in rows}
    assert set(by) == {(role, q, t) for role in ("baseline", "compressed") for q in "12" for t in (1, 2)}
    r = by[("baseline", "2", 2)]
    assert r.judge == ("fake-judge", "single-ref-multi-turn") and r.model == "m-baseline"
    assert r.score == 8.0 and r.correct is True and isinstance(r.verdict, SingleVerdictWithReference)
    assert r.prompt_sha256 == load_prompt_set().templates["single-ref-multi-turn"].sha256
    # the row keeps exactly the prompt the judge was sent: turn 2 with its whole dialogue and the
    # turn-2 reference, rendered independently here from the question and the answers on file
    expected, schema = render_single(load_prompt_set(), QUESTIONS[1],
                                     ["GOOD answer 2.1", "GOOD answer 2.2"], 2)
    assert r.user_prompt == expected.user and schema is SingleVerdictWithReference
    assert graded_text(r.user_prompt, "ASSISTANT TURN 2") == "GOOD answer 2.2"
    assert graded_text(r.user_prompt, "REFERENCE ANSWER TO TURN 2") == "50"
    assert by[("compressed", "1", 1)].score == 3.0 and by[("compressed", "1", 1)].correct is None
    assert by[("compressed", "1", 1)].judge[1] == "single"
    assert r.usage == Usage(prompt_tokens=100, completion_tokens=10, calls=1)


def test_pairs_are_played_both_ways_and_mapped_back(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    judge = FakeJudge()
    grade(run, judge, mode="pairwise")
    rows = read_jsonl(run.pairwise_path, PairJudgment)
    assert len(rows) == 4 and all(r.status == "ok" for r in rows)
    for r in rows:
        g1, g2 = r.games
        assert (g1.a_role, g1.b_role, g2.a_role, g2.b_role) == ("baseline", "compressed", "compressed",
                                                               "baseline")
        assert g1.verdict.verdict == "A>>B" and g2.verdict.verdict == "B>>A"  # GOOD wins from either seat
        assert g1.winner == g2.winner == "baseline" and g1.strength == g2.strength == 2
        assert (r.g1_winner, r.g2_winner) == ("model_1", "model_1")  # FastChat's vocabulary
        assert r.winner == "baseline" and r.consistent is True
        assert (r.model_1, r.model_2, r.role_1, r.role_2) == ("m-baseline", "m-compressed", "baseline",
                                                             "compressed")
        # game 1 shows the baseline's text as A, game 2 as B
        assert "GOOD" in graded_text(r.g1_user_prompt, "ANSWER A" if r.turn == 1 else "ASSISTANT A TURN")
        assert "GOOD" in graded_text(r.g2_user_prompt, "ANSWER B" if r.turn == 1 else "ASSISTANT B TURN")
    assert {r.judge[1] for r in rows} == {"pair", "pair-multi-turn", "pair-ref", "pair-ref-multi-turn"}


def test_position_bias_is_an_inconsistent_tie(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    grade(run, FakeJudge(biased=True), mode="pairwise")
    for r in read_jsonl(run.pairwise_path, PairJudgment):
        assert (r.games[0].winner, r.games[1].winner) == ("baseline", "compressed")
        assert (r.g1_winner, r.g2_winner) == ("model_1", "model_2")
        assert r.winner == "tie" and r.consistent is False and r.status == "ok"


def test_failures_are_recorded_never_graded(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    # compressed answers to question 1 fail at the API; the baseline's 2.2 answer is unparseable
    summary = grade(run, FakeJudge(fail={"POOR answer 1.", "GOOD answer 2.2"}))
    single = {(r.role, str(r.question_id), r.turn): r for r in read_jsonl(run.single_path, SingleJudgment)}
    bad = single[("compressed", "1", 1)]
    assert (bad.status, bad.score, bad.verdict, bad.judgment, bad.attempts) == ("api_error", -1, None,
                                                                               "garbage", 3)
    assert bad.error == "failed on POOR answer 1."
    assert single[("baseline", "2", 2)].status == "invalid_output"
    assert single[("baseline", "2", 2)].correct is None
    pairs = {(str(r.question_id), r.turn): r for r in read_jsonl(run.pairwise_path, PairJudgment)}
    p = pairs[("1", 1)]
    assert p.status == "api_error" and p.winner is None and p.consistent is None
    assert (p.g1_winner, p.g2_winner) == ("error", "error")
    p = pairs[("2", 2)]  # both games show the baseline's 2.2 answer -> both invalid
    assert p.status == "invalid_output" and p.winner is None
    assert all(g.winner is None and g.verdict is None for g in p.games)
    assert summary.single == Counter(ok=5, api_error=2, invalid_output=1)
    # pairs (1, 1) and (1, 2) show "POOR answer 1.1" (turn 2 shows the whole dialogue)
    assert summary.pairwise == Counter(ok=1, api_error=2, invalid_output=1)


def test_one_failed_game_fails_the_pair_but_keeps_the_other(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")

    class HalfJudge(FakeJudge):
        async def judge(self, messages: list[dict[str, str]], schema: type) -> JudgeResult:
            user = messages[-1]["content"]
            if schema is PairVerdict and "POOR" in shown_as_a(user):
                return JudgeResult("invalid_output", None, "??", "no verdict", Usage(calls=1), 1)
            return await super().judge(messages, schema)

    grade(run, HalfJudge(), mode="pairwise")
    row = next(r for r in read_jsonl(run.pairwise_path, PairJudgment) if r.turn == 1 and r.question_id == 1)
    assert row.status == "invalid_output" and row.winner is None
    assert (row.g1_winner, row.g2_winner) == ("model_1", "error")
    assert row.games[0].status == "ok" and row.games[1].judgment == "??"


def test_rerun_skips_ok_and_retries_failed(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    grade(run, FakeJudge(fail={"POOR answer 1."}))
    before_single = len(read_jsonl(run.single_path, SingleJudgment))
    judge = FakeJudge()
    summary = grade(run, judge)
    # only the failed keys were judged again: 2 single (compressed q1) + 2 pairs (q1), 2 games each
    assert judge.stats.calls == 2 + 2 * 2
    assert summary.skipped_single == 6 and summary.skipped_pairwise == 2
    single = read_jsonl(run.single_path, SingleJudgment)
    assert len(single) == before_single + 2
    latest = latest_single(single)
    assert len(latest) == 8 and all(r.status == "ok" for r in latest.values())
    assert latest[("compressed", "1", 1, "fake-judge")].score == 3.0
    pairs = latest_pairwise(read_jsonl(run.pairwise_path, PairJudgment))
    assert all(r.status == "ok" for r in pairs.values()) and len(pairs) == 4
    assert final_counts(run, "fake-judge") == (Counter(ok=8), Counter(ok=4))
    # a third run has nothing to do
    judge = FakeJudge()
    grade(run, judge)
    assert judge.stats.calls == 0


def test_another_judge_or_template_regrades(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path / "run")
    grade(run, FakeJudge(), mode="single")
    other = FakeJudge()
    other.model = "other-judge"
    grade(run, other, mode="single")
    assert other.stats.calls == 8
    # an edited template: its rows are judged again, the others are not
    src = Path(__file__).resolve().parents[2] / "prompts"
    for f in src.glob("*.txt"):
        text = f.read_text()
        (tmp_path / f.name).write_text(text + "\n" if f.name == "single.txt" else text)
    monkeypatch.setenv("JUDGE_PROMPTS_DIR", str(tmp_path))
    judge = FakeJudge()
    grade(run, judge, mode="single")
    assert judge.stats.calls == 2  # only turn 1 of question 1 uses "single", for both roles


def test_roles_and_missing_inputs(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", {"baseline": "GOOD", "compressed-int4": "POOR",
                                      "compressed-drop": "POOR", "control": "GOOD"})
    judge = FakeJudge()
    grade(run, judge, mode="pairwise", roles=["compressed-int4"])
    rows = read_jsonl(run.pairwise_path, PairJudgment)
    assert {r.role_2 for r in rows} == {"compressed-int4"} and len(rows) == 4
    grade(run, FakeJudge(), mode="both")
    latest = latest_pairwise(read_jsonl(run.pairwise_path, PairJudgment))
    assert {k[0] for k in latest} == {"compressed-int4", "compressed-drop", "control"}
    control = [r for k, r in latest.items() if k[0] == "control"]
    assert all(r.winner == "tie" for r in control)  # GOOD vs GOOD: the fake judge says A>>B both ways
    assert {r.role for r in read_jsonl(run.single_path, SingleJudgment)} == {
        "baseline", "compressed-int4", "compressed-drop", "control"}
    with pytest.raises(ConfigError, match="compressed-x"):
        grade(run, FakeJudge(), roles=["compressed-x"])
    lonely = make_run(tmp_path / "lonely", {"baseline": "GOOD"})
    with pytest.raises(RunFolderError, match="--mode single"):
        grade(lonely, FakeJudge(), mode="pairwise")
    with pytest.raises(RunFolderError, match="baseline"):
        grade(make_run(tmp_path / "nobase", {"compressed": "POOR"}), FakeJudge())


def test_run_questions_come_from_the_manifest(tmp_path: Path) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(q.model_dump_json() + "\n" for q in QUESTIONS))
    from judge.questions import load_questions

    info, _ = load_questions(qfile)
    run = make_run(tmp_path / "run")
    with pytest.raises(RunFolderError, match="--questions"):
        run_questions(run)
    run.update_manifest(questions=info)
    assert [q.key for q in run_questions(run)] == ["1", "2"]
    run.update_manifest(questions=info.model_copy(update={"sha256": "0" * 64}))
    with pytest.raises(RunFolderError, match="not the one"):
        run_questions(run)


# --------------------------------------------------------------------------- over real HTTP


def manifest_run(tmp_path: Path) -> Run:
    from judge.questions import load_questions

    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(q.model_dump_json() + "\n" for q in QUESTIONS))
    run = make_run(tmp_path / "run")
    run.update_manifest(questions=load_questions(qfile)[0])
    return run


def test_grade_run_over_http_then_rerun_is_free(tmp_path: Path) -> None:
    run = manifest_run(tmp_path)
    with FakeOpenAIServer() as srv:
        summary = grade_run(run, "fake-judge", base_url=srv.base_url, progress=False)
        assert len(srv.requests) == 8 + 4 * 2 == summary.calls
        assert summary.final_single == Counter(ok=8) and summary.final_pairwise == Counter(ok=4)
        # every judgment is schema-valid and carries the judge's name
        for r in read_jsonl(run.single_path, SingleJudgment):
            assert r.status == "ok" and r.judge[0] == "fake-judge" and r.score == 7.0
        again = grade_run(run, "fake-judge", base_url=srv.base_url, progress=False)
        assert len(srv.requests) == 16 and again.calls == 0 and again.skipped_single == 8
        # lose the judgment files: the cache answers everything, still no request
        run.single_path.unlink()
        run.pairwise_path.unlink()
        third = grade_run(run, "fake-judge", base_url=srv.base_url, progress=False)
        assert len(srv.requests) == 16 and third.calls == 0 and third.cache_hits == 16
        assert third.final_single == Counter(ok=8) and third.final_pairwise == Counter(ok=4)
    manifest = run.load_manifest()
    assert manifest.config["judge"]["model"] == "fake-judge"
    assert manifest.stages["grade"].finished is not None


def test_text_only_endpoint(tmp_path: Path) -> None:
    run = manifest_run(tmp_path)

    def no_schema(body: dict[str, Any]) -> Reply:
        if "response_format" in body:
            return Reply(status=400, body={"error": {"message": "response_format is not supported"}})
        return default_responder(body)

    with FakeOpenAIServer(no_schema) as srv:
        summary = grade_run(run, "fake-judge", base_url=srv.base_url, progress=False, concurrency=1)
    assert summary.final_single == Counter(ok=8) and summary.final_pairwise == Counter(ok=4)
    rows = read_jsonl(run.single_path, SingleJudgment)
    assert {r.correct for r in rows if r.question_id == 2} == {True}  # from the [[correct]] marker


def test_unreachable_endpoint_is_one_error(tmp_path: Path) -> None:
    run = manifest_run(tmp_path)
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(JudgeEndpointError, match="cannot be reached"):
        grade_run(run, "fake-judge", base_url=url, progress=False)
    assert not run.single_path.exists()  # nothing judged, nothing written


def test_every_request_failing_is_one_error_after_recording(tmp_path: Path) -> None:
    run = manifest_run(tmp_path)
    with FakeOpenAIServer(lambda body: Reply(status=404, body={"error": {"message": "no such model"}})) as srv:
        with pytest.raises(JudgeEndpointError, match="no such model"):
            grade_run(run, "fake-judge", base_url=srv.base_url, progress=False, mode="single")
    rows = read_jsonl(run.single_path, SingleJudgment)
    assert len(rows) == 8 and {r.status for r in rows} == {"api_error"}


def test_openai_judge_needs_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("JUDGE_API_KEY", raising=False)
    with pytest.raises(JudgeSpecError, match="OPENAI_API_KEY"):
        grade_run(manifest_run(tmp_path), "gpt-4o", progress=False)


def test_summary_line_accounts_for_everything(tmp_path: Path) -> None:
    run = manifest_run(tmp_path)
    replies = iter(range(10_000))

    def flaky(body: dict[str, Any]) -> Reply:
        return Reply(body=completion("no verdict")) if next(replies) % 3 == 0 else default_responder(body)

    with FakeOpenAIServer(flaky) as srv:
        summary = grade_run(run, "fake-judge", base_url=srv.base_url, progress=False, max_retries=0,
                            concurrency=1)
    text = str(summary)
    assert "single" in text and "pairwise" in text
    assert sum(summary.final_single.values()) == 8 and sum(summary.final_pairwise.values()) == 4
    assert summary.single["invalid_output"] > 0


# --------------------------------------------------------------------------- the CLI


def cli(argv: list[str]) -> int:
    from judge.cli import main

    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_grade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = manifest_run(tmp_path)
    with FakeOpenAIServer() as srv:
        code = cli(["grade", str(run.root), "--judge", "fake-judge", "--judge-base-url", srv.base_url,
                    "--mode", "single", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "8 ok written" in out and "Now: single 8 ok" in out
    assert len(read_jsonl(run.single_path, SingleJudgment)) == 8 and not run.pairwise_path.exists()


@pytest.mark.parametrize("argv,fragment", [
    (["--mode", "triple"], "--mode"),
    (["--judge", "local:"], "local: needs a model"),
    (["--judge", "local:smollm2-135m", "--judge-base-url", "http://127.0.0.1:1/v1"], "cannot be combined"),
    (["--judge-base-url", "127.0.0.1:8000"], "http://"),
    (["--role", "compressed-nope"], "compressed-nope"),
])
def test_cli_grade_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         argv: list[str], fragment: str) -> None:
    run = manifest_run(tmp_path)
    base = ["grade", str(run.root), "--no-progress"]
    if "--judge" not in argv:
        base += ["--judge", "fake-judge"]
    if "--judge-base-url" not in argv and "--judge" not in argv:
        base += ["--judge-base-url", f"http://127.0.0.1:{free_port()}/v1"]
    code = cli(base + argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err and len(err.splitlines()) == 1


def test_cli_unreachable_judge_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = manifest_run(tmp_path)
    code = cli(["grade", str(run.root), "--judge", "fake-judge", "--judge-base-url",
                f"http://127.0.0.1:{free_port()}/v1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be reached" in err and len(err.strip().splitlines()) == 1
