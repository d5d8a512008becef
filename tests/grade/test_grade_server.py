"""Judge specs, and end to end: a real vLLM OpenAI server of the embedded model grades a run."""

from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fake_openai import sdk_httpx
from judge.errors import JudgeEndpointError, JudgeSpecError
from judge.grade.server import (JudgeSpec, LocalJudgeServer, context_length, endpoint_for,
                                parse_judge_spec)
from judge.schemas import (Answer, AnswerChoice, PairJudgment, PairVerdict, Question, SingleJudgment,
                           SingleVerdict, SingleVerdictWithReference)
from judge.store import Run, append_jsonl, read_jsonl


def test_parse_judge_spec() -> None:
    assert parse_judge_spec("local:smollm2-135m") == JudgeSpec("local", "smollm2-135m")
    assert parse_judge_spec("gpt-4o") == JudgeSpec("openai", "gpt-4o")
    assert parse_judge_spec("qwen", "http://127.0.0.1:8000/v1/") == JudgeSpec(
        "endpoint", "qwen", "http://127.0.0.1:8000/v1")
    for bad, fragment in [("", "empty"), ("local:", "needs a model"), ("  ", "empty")]:
        with pytest.raises(JudgeSpecError, match=fragment):
            parse_judge_spec(bad)
    with pytest.raises(JudgeSpecError, match="cannot be combined"):
        parse_judge_spec("local:x", "http://127.0.0.1:1/v1")
    with pytest.raises(JudgeSpecError, match="http://"):
        parse_judge_spec("x", "localhost:8000")


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("JUDGE_API_KEY", raising=False)
    with pytest.raises(JudgeSpecError, match="OPENAI_API_KEY"):
        endpoint_for(JudgeSpec("openai", "gpt-4o"))
    assert endpoint_for(JudgeSpec("endpoint", "m", "http://h/v1")).api_key == "EMPTY"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    ep = endpoint_for(JudgeSpec("openai", "gpt-4o"))
    assert (ep.model, ep.base_url, ep.api_key) == ("gpt-4o", None, "sk-openai")
    assert "sk-openai" not in repr(ep)
    monkeypatch.setenv("JUDGE_API_KEY", "sk-judge")
    assert endpoint_for(JudgeSpec("endpoint", "m", "http://h/v1")).api_key == "sk-judge"


def test_context_length(tmp_path: Path) -> None:
    assert context_length(tmp_path) == 4096  # no config.json
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    assert context_length(tmp_path) == 2048
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 131072}))
    assert context_length(tmp_path) == 8192


def test_server_command_binds_localhost_only(tmp_path: Path) -> None:
    server = LocalJudgeServer("/models/x", "x", tmp_path / "log", port=8123)
    cmd = server.command()
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "8123"
    assert cmd[cmd.index("--served-model-name") + 1] == "x" and "--enforce-eager" in cmd
    assert server.base_url == "http://127.0.0.1:8123/v1"


# --------------------------------------------------------------------------- end to end

QUESTIONS = [
    Question(question_id=1, category="writing", turns=["Name one colour of the sky.",
                                                        "Now name a different one."]),
    Question(question_id=2, category="math", turns=["What is 2 + 3?", "Multiply that by 4."],
             reference=["5", "20"]),
]
ANSWERS = {
    "baseline": {"1": ["Blue.", "Grey, on a cloudy day."], "2": ["2 + 3 = 5.", "5 * 4 = 20."]},
    "compressed": {"1": ["Blue blue blue blue.", "Blue."], "2": ["2 + 3 = 6.", "6 * 4 = 24."]},
}


class CountingTransport:
    """Counts every HTTP request the judge client sends, then passes it on."""

    def __init__(self) -> None:
        httpx = sdk_httpx()
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[str] = []

    async def handle_async_request(self, request: Any) -> Any:
        self.requests.append(f"{request.method} {request.url.path}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def counting_client() -> tuple[Any, CountingTransport]:
    httpx = sdk_httpx()
    transport = CountingTransport()
    return httpx.AsyncClient(transport=transport, timeout=None), transport


def e2e_run(root: Path) -> Run:
    from judge.questions import load_questions

    qfile = root / "q.jsonl"
    root.mkdir(parents=True, exist_ok=True)
    qfile.write_text("".join(q.model_dump_json() + "\n" for q in QUESTIONS))
    run = Run(root / "run")
    for role, by_q in ANSWERS.items():
        append_jsonl(run.answers_path(role), [
            Answer(question_id=q.question_id, answer_id=f"{role}{q.key}", model_id=f"smollm2-{role}",
                   choices=[AnswerChoice(turns=by_q[q.key])], tstamp=0.0, role=role,
                   category=q.category) for q in QUESTIONS])
    run.update_manifest(questions=load_questions(qfile)[0])
    return run


def port_is_closed(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_local_judge_end_to_end_and_rerun_is_free(tmp_path: Path, base_model: Any) -> None:
    from judge.grade.stage import grade_run

    run = e2e_run(tmp_path)
    opts = dict(mode="both", progress=False, max_text_chars=200, max_tokens=512, concurrency=8)
    http, counter = counting_client()
    summary = grade_run(run, "local:smollm2-135m", http_client=http, **opts)  # type: ignore[arg-type]

    single = read_jsonl(run.single_path, SingleJudgment)
    pairs = read_jsonl(run.pairwise_path, PairJudgment)
    # 2 roles x 2 questions x 2 turns single; 2 questions x 2 turns pairs, two games each
    assert len(single) == 8 and len(pairs) == 4
    assert sum(summary.final_single.values()) == 8 and sum(summary.final_pairwise.values()) == 4
    # every request the client sent is counted: the preflight, then one per judgment attempt
    assert counter.requests.count("GET /v1/models") == 1
    assert len(counter.requests) - 1 == summary.calls == sum(r.usage.calls for r in single) + sum(
        g.usage.calls for p in pairs for g in p.games)
    # structured output: every judgment ok and schema-valid (a 135M judge's content is poor, its
    # shape is enforced by the server)
    assert Counter(r.status for r in single) == Counter(ok=8), [r.error for r in single]
    assert Counter(p.status for p in pairs) == Counter(ok=4), [g.error for p in pairs for g in p.games]
    for r in single:
        schema = SingleVerdictWithReference if r.question_id == 2 else SingleVerdict
        assert schema.model_validate(json.loads(r.judgment)) == r.verdict
        assert 1 <= r.score <= 10 and r.judge[0] == "smollm2-135m"
        assert (r.correct is not None) == (r.question_id == 2)
    for p in pairs:
        for g in p.games:
            assert PairVerdict.model_validate(json.loads(g.judgment)) == g.verdict
        assert p.winner in ("baseline", "compressed", "tie")
        assert p.consistent == (p.games[0].winner == p.games[1].winner)
    # the server is gone, its log kept in the run
    log = run.logs_dir / "judge-server.log"
    assert log.is_file() and log.read_text().count("\n=== ") == 1
    base_url = run.load_manifest().config["judge"]  # type: ignore[union-attr]
    assert base_url["model"] == "smollm2-135m"

    # rerun: nothing to do, no server start, zero HTTP requests
    http, counter = counting_client()
    again = grade_run(run, "local:smollm2-135m", http_client=http, **opts)  # type: ignore[arg-type]
    assert counter.requests == [] and again.calls == 0 and again.skipped_single == 8
    assert len(read_jsonl(run.single_path, SingleJudgment)) == 8

    # lose the judgment files: every verdict comes back from the cache, still zero requests
    run.single_path.unlink()
    run.pairwise_path.unlink()
    http, counter = counting_client()
    third = grade_run(run, "local:smollm2-135m", http_client=http, **opts)  # type: ignore[arg-type]
    assert counter.requests == [] and third.calls == 0 and third.cache_hits == 16
    rebuilt = read_jsonl(run.single_path, SingleJudgment)
    assert sorted((r.role, r.question_id, r.turn, r.score) for r in rebuilt) == sorted(
        (r.role, r.question_id, r.turn, r.score) for r in single)
    assert log.read_text().count("\n=== ") == 1  # the server was never started again


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_local_server_that_cannot_start_is_one_error(tmp_path: Path) -> None:
    server = LocalJudgeServer(tmp_path / "no-such-model", "nothing", tmp_path / "logs" / "server.log",
                              startup_timeout_s=600)
    with pytest.raises(JudgeEndpointError, match="exited with code"):
        server.start()
    assert server.proc is None and port_is_closed(server.base_url)
    assert (tmp_path / "logs" / "server.log").stat().st_size > 0


def test_sigterm_unwinds_while_a_server_runs(tmp_path: Path) -> None:
    """SIGTERM to judge becomes SystemExit while a local server is up, so `stop` runs; then the
    previous handler is back."""
    import os
    import signal

    before = signal.getsignal(signal.SIGTERM)
    server = LocalJudgeServer("/models/x", "x", tmp_path / "log")
    server._trap_sigterm()
    try:
        with pytest.raises(SystemExit) as exc:
            os.kill(os.getpid(), signal.SIGTERM)
        assert exc.value.code == 128 + signal.SIGTERM
    finally:
        server.stop()  # no process: only restores the handler
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_existing_sigterm_handler_is_kept(tmp_path: Path) -> None:
    """Under the CLI, whose own handler turns SIGTERM into KeyboardInterrupt, the server adds none."""
    import signal

    def mine(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, mine)
    try:
        server = LocalJudgeServer("/models/x", "x", tmp_path / "log")
        server._trap_sigterm()
        assert signal.getsignal(signal.SIGTERM) is mine
        server.stop()
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_cli_main_restores_the_sigterm_handler(tmp_path: Path) -> None:
    import signal

    from judge.cli import main

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exc:
        main(["grade", str(tmp_path / "missing"), "--no-progress"])
    assert exc.value.code == 2
    assert signal.getsignal(signal.SIGTERM) == before
