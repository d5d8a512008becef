"""A judge fleet end to end: `grade_run` and `judge grade` over two real fake-judge HTTP servers on
127.0.0.1, one of which starts failing mid-run; then reruns that cost no request."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import judge.grade.fleet
from fake_openai import FakeOpenAIServer, Reply, default_responder, error_body
from judge.grade.server import free_port
from judge.grade.stage import grade_run
from judge.schemas import Answer, AnswerChoice, PairJudgment, Question, SingleJudgment
from judge.store import Run, append_jsonl, read_jsonl

QUESTIONS = [
    Question(question_id=1, category="writing", turns=["Describe rain.", "Now describe snow."]),
    Question(question_id=2, category="math", turns=["What is 6*7?", "Add 8 to it."],
             reference=["42", "50"]),
]
SECRET = "sk-fleet-0123456789abcdef"
REQUESTS = 8 + 4 * 2  # 2 roles x 2 questions x 2 turns single grades; 4 pairs played both ways


def make_run(tmp_path: Path) -> Run:
    """Baseline and compressed answers to both questions, with the question set in the manifest."""
    from judge.questions import load_questions

    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(q.model_dump_json() + "\n" for q in QUESTIONS))
    run = Run(tmp_path / "run")
    for role in ("baseline", "compressed"):
        append_jsonl(run.answers_path(role), [
            Answer(question_id=q.question_id, answer_id=f"{role}-{q.key}", model_id=f"m-{role}",
                   choices=[AnswerChoice(turns=[f"{role} answer {q.key}.{t}" for t in (1, 2)])],
                   tstamp=0.0, role=role, category=q.category) for q in QUESTIONS])
    run.update_manifest(questions=load_questions(qfile)[0])
    return run


class FailsAfter:
    """A responder that answers ``healthy`` requests, then answers HTTP 500 at once."""

    def __init__(self, healthy: int):
        self.healthy = healthy
        self.server: FakeOpenAIServer | None = None
        self.failed = 0

    def __call__(self, body: dict[str, Any]) -> Reply:
        assert self.server is not None
        if len(self.server.requests) > self.healthy:  # this request is already recorded
            self.failed += 1
            return Reply(status=500, body=error_body("overloaded", 500), delay_s=0.0)
        return default_responder(body)


def test_a_fleet_with_a_failing_endpoint_judges_everything_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(judge.grade.fleet, "REST_BASE_S", 30.0)  # rested for the rest of the run
    monkeypatch.setenv("JUDGE_API_KEY", SECRET)
    run = make_run(tmp_path)
    flaky = FailsAfter(healthy=3)
    with FakeOpenAIServer(latency_s=0.1) as a, FakeOpenAIServer(flaky, latency_s=0.1) as b:
        flaky.server = b
        summary = grade_run(run, "fake-judge", base_url=[a.base_url, b.base_url], concurrency=2,
                            progress=False)

        # every judgment completed exactly once, none failed
        singles = read_jsonl(run.single_path, SingleJudgment)
        pairs = read_jsonl(run.pairwise_path, PairJudgment)
        assert len(singles) == 8 and len({(r.role, r.question_id, r.turn) for r in singles}) == 8
        assert len(pairs) == 4 and len({(r.role_2, r.question_id, r.turn) for r in pairs}) == 4
        assert {r.status for r in singles + pairs} == {"ok"}
        assert summary.single == Counter(ok=8) and summary.pairwise == Counter(ok=4)
        # both endpoints worked while healthy; each game was answered once, by one of them
        assert len(a.requests) >= 1 and len(b.requests) - flaky.failed == 3
        assert len(a.requests) + 3 == REQUESTS
        # the failing endpoint was rested: at most the requests already in flight when it began
        # failing (its 2 slots) reached it, none afterwards
        assert 1 <= flaky.failed <= 2
        assert summary.calls == len(a.requests) + len(b.requests)
        assert [(s.base_url, s.requests, s.failures) for s in summary.endpoints] == [
            (a.base_url, len(a.requests), 0), (b.base_url, len(b.requests), flaky.failed)]
        text = str(summary)
        assert "2 judge endpoints" in text
        assert f"{b.base_url} {len(b.requests)} requests ({flaky.failed} failed)" in text
        assert "2 judge endpoints" in summary.short()
        assert run.load_manifest().config["judge"]["base_url"] == [a.base_url, b.base_url]

        # a rerun sends nothing (resume), even with the endpoint still failing
        sent = (len(a.requests), len(b.requests))
        again = grade_run(run, "fake-judge", base_url=[a.base_url, b.base_url], progress=False)
        assert (len(a.requests), len(b.requests)) == sent and again.calls == 0
        assert again.skipped_single == 8 and again.skipped_pairwise == 4
        # the cache is the endpoint's business no more than resume is: one endpoint, as a
        # string, answers everything from it
        run.single_path.unlink()
        run.pairwise_path.unlink()
        alone = grade_run(run, "fake-judge", base_url=a.base_url, progress=False)
        assert (len(a.requests), len(b.requests)) == sent and alone.calls == 0
        assert alone.cache_hits == REQUESTS and alone.final_single == Counter(ok=8)
        assert "judge endpoints" not in str(alone)
        assert run.load_manifest().config["judge"]["base_url"] == a.base_url
    # the key (one, for both endpoints) is in no file of the run
    for path in run.root.rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path


def cli(argv: list[str]) -> int:
    from judge.cli import main

    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_grade_with_two_endpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path)
    with FakeOpenAIServer(latency_s=0.02) as a, FakeOpenAIServer(latency_s=0.02) as b:
        code = cli(["grade", str(run.root), "--judge", "fake-judge", "--judge-base-url", a.base_url,
                    "--judge-base-url", b.base_url, "--mode", "single", "--probes", "0",
                    "--concurrency", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "8 ok written" in out and "2 judge endpoints" in out
    # one slot each, equal speed: shared (4 and 4 on an idle machine)
    assert len(a.requests) + len(b.requests) == 8 and min(len(a.requests), len(b.requests)) >= 3


@pytest.mark.parametrize("second,fragment", [
    ("dead", "cannot be reached"),
    ("same", "is given twice"),
    ("ftp://127.0.0.1/v1", "must start with http://"),
])
def test_cli_fleet_bad_endpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            second: str, fragment: str) -> None:
    run = make_run(tmp_path)
    with FakeOpenAIServer() as a:
        other = {"dead": f"http://127.0.0.1:{free_port()}/v1", "same": a.base_url + "/"}.get(second, second)
        code = cli(["grade", str(run.root), "--judge", "fake-judge", "--judge-base-url", a.base_url,
                    "--judge-base-url", other, "--no-progress"])
        assert a.requests == []  # refused before any judgment
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err and len(err.splitlines()) == 1
    if second == "dead":
        assert other in err and "drop this one" in err
    assert not run.single_path.exists()
