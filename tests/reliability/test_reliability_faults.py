"""Reliability 1: judge faults. The judge client and the grade stage against a fault-injecting
OpenAI-compatible server on 127.0.0.1 (tests/fault_openai.py).

* each fault kind alone is retried and the judgment then succeeds; a judgment whose every attempt
  fails is recorded with its status, never as a verdict;
* a grading run of 360 judgments (480 first requests) at a 30% fault rate loses nothing, duplicates
  nothing, accounts for every request and every final status, and a rerun bills only the judgments
  that failed (every ok one comes from the cache).

Set ``JUDGE_RELIABILITY_FIGURES=DIR`` to have the figures written to ``DIR/faults.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from fault_openai import FAULTS, FaultOpenAIServer, even_rates
from reliability_support import synthetic_run, write_questions

from judge.grade.stage import grade_run
from judge.grade.client import OpenAIJudgeClient
from judge.schemas import PairJudgment, SingleJudgment, SingleVerdict
from judge.store import read_jsonl

MESSAGES = [{"role": "user", "content": "Rate this answer. [Question]\nHi?\n[The Answer]\nHello."}]


def _judge_once(server: FaultOpenAIServer, *, max_retries: int = 4, timeout_s: float = 5.0):
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    async def go():
        client = OpenAIJudgeClient("fake-judge", base_url=server.base_url, max_retries=max_retries,
                                   timeout_s=timeout_s, sleep=fake_sleep)
        try:
            return await client.judge(MESSAGES, SingleVerdict), client.stats
        finally:
            await client.aclose()

    result, stats = asyncio.run(go())
    return result, stats, sleeps


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_retried_then_the_judgment_succeeds(fault: str) -> None:
    # a short client timeout only where the fault is a hang: elsewhere a slow, loaded machine
    # must not turn the valid reply into a timeout and a third request
    # (the hang lasts until the server stops; the second, valid reply must come within 2 s)
    with FaultOpenAIServer({}, script=[fault], hang_s=60.0, retry_after="3") as srv:
        result, stats, sleeps = _judge_once(srv, timeout_s=2.0 if fault == "hang" else 30.0)
    assert srv.counts == Counter({fault: 1, "ok": 1})
    assert result.status == "ok" and result.verdict is not None
    assert result.verdict.rating == 7  # the valid reply, not the injected one (rating 42)
    assert result.usage.calls == 2 == stats.calls
    assert result.attempts == 2
    if fault == "429":
        assert sleeps == [3.0]  # Retry-After honoured
    elif fault in ("500", "503", "hang", "close", "truncated_json"):
        assert len(sleeps) == 1  # a transient failure backs off once
    elif fault in ("schema_invalid", "empty_choices"):
        assert sleeps == []  # an invalid reply is asked again at once


@pytest.mark.parametrize("fault", ["503", "schema_invalid", "empty_choices", "truncated_json"])
def test_a_judgment_whose_every_attempt_fails_is_recorded_never_a_verdict(fault: str) -> None:
    with FaultOpenAIServer({fault: 1.0}) as srv:
        result, stats, _ = _judge_once(srv, max_retries=2)
    assert srv.chat_requests == 3 == stats.calls  # 1 + max_retries, no more
    assert result.verdict is None
    expected = "invalid_output" if fault in ("schema_invalid", "empty_choices") else "api_error"
    assert result.status == expected
    assert result.error  # one line saying why
    assert "\n" not in result.error


# --------------------------------------------------------------------------- the 30% run

N_QUESTIONS = 60  # x 2 turns: 240 single judgments (2 roles) + 120 pairwise (2 requests each)
FAULT_RATE = 0.30


def _row_calls(single: list[SingleJudgment], pairs: list[PairJudgment]) -> int:
    calls = sum(r.usage.calls for r in single if r.usage)
    calls += sum(g.usage.calls for r in pairs for g in (r.games or []) if g.usage)
    return calls


def _check_rows(expected_single: set, expected_pairs: set, single: list[SingleJudgment],
                pairs: list[PairJudgment]) -> None:
    """All rows written so far: every key present, every verdict from a valid reply."""
    # nothing lost: every (role, question, turn) has a row; the latest row per key is its status
    keys_single = Counter((r.role, str(r.question_id), r.turn) for r in single)
    keys_pairs = Counter((r.role_2, str(r.question_id), r.turn) for r in pairs)
    assert set(keys_single) == expected_single
    assert set(keys_pairs) == expected_pairs
    # every verdict came from a valid reply: the fake judge's 7 and A>B, never the injected 42
    assert {r.score for r in single if r.status == "ok"} == {7.0}
    assert all(r.score == -1 and r.verdict is None for r in single if r.status != "ok")
    for r in pairs:
        if r.status == "ok":
            assert [g.verdict.verdict for g in r.games] == ["A>B", "A>B"]  # type: ignore[union-attr]
            assert r.winner == "tie" and r.consistent is False  # A>B both ways = inconsistent
        else:
            assert r.winner is None


def test_grading_360_judgments_at_30_percent_faults_loses_and_duplicates_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the client's own backoff schedule, 20 times shorter, so the run takes seconds, not a minute
    backoff = OpenAIJudgeClient._backoff_s
    monkeypatch.setattr(OpenAIJudgeClient, "_backoff_s",
                        lambda self, attempt, retry_after_s: backoff(self, attempt, retry_after_s) / 20)
    qfile = write_questions(tmp_path / "q.jsonl", N_QUESTIONS)
    run = synthetic_run(tmp_path / "run", qfile)
    expected_single = {(role, str(i), t) for role in ("baseline", "compressed")
                       for i in range(1, N_QUESTIONS + 1) for t in (1, 2)}
    expected_pairs = {("compressed", str(i), t) for i in range(1, N_QUESTIONS + 1) for t in (1, 2)}
    n_judgments = len(expected_single) + len(expected_pairs)
    first_requests = len(expected_single) + 2 * len(expected_pairs)
    assert n_judgments >= 200

    figures: dict[str, object] = {"judgments": n_judgments, "first_requests": first_requests,
                                  "fault_rate": FAULT_RATE, "max_retries": 4, "passes": []}
    passes: list[dict[str, object]] = figures["passes"]  # type: ignore[assignment]
    prev_single: list[SingleJudgment] = []
    prev_pairs: list[PairJudgment] = []
    for attempt in range(3):  # the first run, then reruns while anything failed
        with FaultOpenAIServer(even_rates(FAULT_RATE), seed=20240 + attempt, hang_s=3.0) as srv:
            summary = grade_run(run, "fake-judge", base_url=srv.base_url, timeout_s=2.0,
                                concurrency=16, max_retries=4, progress=False)
        single = read_jsonl(run.single_path, SingleJudgment)
        pairs = read_jsonl(run.pairwise_path, PairJudgment)
        new_single, new_pairs = single[len(prev_single):], pairs[len(prev_pairs):]
        # append-only: the earlier rows are untouched
        assert single[:len(prev_single)] == prev_single and pairs[:len(prev_pairs)] == prev_pairs
        _check_rows(expected_single, expected_pairs, single, pairs)
        # every request made is attributed to exactly one row written by this pass; the server saw
        # no more (a client-side timeout can fire before a request is written, on a busy machine)
        assert summary.calls == _row_calls(new_single, new_pairs) >= srv.chat_requests
        if attempt == 0:
            # no duplicates: exactly one row per judgment
            assert len(new_single) == len(expected_single) and len(new_pairs) == len(expected_pairs)
        else:
            # a rerun judges again exactly the keys whose latest row failed, and nothing else
            failed_before = ({(r.role, str(r.question_id), r.turn) for r in
                              _latest(prev_single, "single").values() if r.status != "ok"},
                             {(r.role_2, str(r.question_id), r.turn) for r in
                              _latest(prev_pairs, "pair").values() if r.status != "ok"})
            assert {(r.role, str(r.question_id), r.turn) for r in new_single} == failed_before[0]
            assert {(r.role_2, str(r.question_id), r.turn) for r in new_pairs} == failed_before[1]
        final = Counter(summary.final_single) + Counter(summary.final_pairwise)
        assert sum(final.values()) == n_judgments  # every final status accounted for
        passes.append({
            "requests": summary.calls, "requests_received": srv.chat_requests,
            "server_outcomes": dict(sorted(srv.counts.items())),
            "rows_written": len(new_single) + len(new_pairs),
            "retries": summary.calls - _first_requests(new_single, new_pairs),
            "statuses_written": dict(Counter(r.status for r in new_single + new_pairs)),
            "final_statuses": dict(final), "cache_hits": summary.cache_hits,
        })
        prev_single, prev_pairs = single, pairs
        if final["ok"] == n_judgments:
            break
    assert final["ok"] == n_judgments, figures
    # no judgment is billed twice: one ok row per key over all passes
    ok_keys = Counter([("single", r.role, str(r.question_id), r.turn) for r in single if r.status == "ok"]
                      + [("pair", r.role_2, str(r.question_id), r.turn) for r in pairs if r.status == "ok"])
    assert len(ok_keys) == n_judgments and max(ok_keys.values()) == 1
    figures["lost"] = n_judgments - len(ok_keys)
    figures["duplicated"] = sum(v - 1 for v in ok_keys.values())
    print("\nfault-injection figures:", json.dumps(figures, indent=1))
    out = os.environ.get("JUDGE_RELIABILITY_FIGURES")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "faults.json").write_text(json.dumps(figures, indent=1) + "\n")


def _first_requests(single: list[SingleJudgment], pairs: list[PairJudgment]) -> int:
    """Judge calls that went to the server (not the cache): one first request each."""
    return (sum(1 for r in single if r.usage and r.usage.calls)
            + sum(1 for r in pairs for g in (r.games or []) if g.usage and g.usage.calls))


def _latest(rows, kind: str) -> dict:
    if kind == "single":
        return {(r.role, str(r.question_id), r.turn): r for r in rows}
    return {(r.role_2, str(r.question_id), r.turn): r for r in rows}
