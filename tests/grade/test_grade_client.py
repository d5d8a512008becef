"""The judge client through the real openai SDK, with the HTTP layer replaced by a mock transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fake_openai import completion, error_body, sdk_httpx
from judge.grade.cache import JudgeCache
from judge.grade.client import OpenAIJudgeClient, strict_json_schema
from judge.schemas import PairVerdict, SingleVerdict, SingleVerdictWithReference
from judge.grade.verdicts import parse_verdict

httpx = sdk_httpx()
MESSAGES = [{"role": "system", "content": "be fair"}, {"role": "user", "content": "grade this"}]
GOOD_SINGLE = {"explanation": "ok", "issues": ["factual_error"], "rating": 6}


class Recorder:
    """A mock transport handler: replies from a script, records every request body."""

    def __init__(self, *replies: Callable[[dict[str, Any]], Any] | Any):
        self.replies = list(replies)
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: Any) -> Any:
        body = json.loads(request.content)
        self.bodies.append(body)
        reply = self.replies[min(len(self.bodies), len(self.replies)) - 1]
        reply = reply(body) if callable(reply) else reply
        if isinstance(reply, Exception):
            raise reply
        return reply


def ok(content: str, **kw: Any) -> Any:
    return httpx.Response(200, json=completion(content, **kw))


def status(code: int, message: str = "boom", headers: dict[str, str] | None = None) -> Any:
    return httpx.Response(code, json=error_body(message, code), headers=headers or {})


def make_client(handler: Any, *, sleeps: list[float] | None = None, **kw: Any) -> OpenAIJudgeClient:
    async def fake_sleep(s: float) -> None:
        if sleeps is not None:
            sleeps.append(s)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAIJudgeClient("judge-model", base_url="http://judge.test/v1", api_key="sk-test",
                             http_client=http, sleep=fake_sleep, **kw)


def run(client: OpenAIJudgeClient, schema: type = SingleVerdict, messages: list | None = None) -> Any:
    async def go() -> Any:
        try:
            return await client.judge(messages or MESSAGES, schema)
        finally:
            await client.aclose()

    return asyncio.run(go())


# --------------------------------------------------------------------------- structured output


def test_json_schema_request_and_verdict() -> None:
    rec = Recorder(ok(json.dumps(GOOD_SINGLE), prompt_tokens=120, completion_tokens=30))
    result = run(make_client(rec, max_tokens=321))
    assert result.status == "ok" and result.verdict == SingleVerdict(**GOOD_SINGLE)
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.calls) == (120, 30, 1)
    body = rec.bodies[0]
    assert body["model"] == "judge-model" and body["temperature"] == 0
    assert body["max_completion_tokens"] == 321 and body["messages"] == MESSAGES
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["required"] == ["explanation", "issues", "rating"]
    assert schema["additionalProperties"] is False


def test_strict_schema_shape() -> None:
    plain = strict_json_schema(SingleVerdictWithReference)
    assert plain["required"] == list(plain["properties"]) == ["explanation", "issues", "rating", "correct"]
    assert "default" not in json.dumps(plain) and "maxLength" not in json.dumps(plain)
    capped = strict_json_schema(PairVerdict, max_text_chars=500)
    props = capped["properties"]
    assert props["explanation"]["maxLength"] == 500
    assert "maxLength" not in props["verdict"]  # an enum is not free text
    assert props["issues_a"]["maxItems"] == props["issues_b"]["maxItems"] == 9


# --------------------------------------------------------------------------- fallbacks


def test_steps_down_to_text_when_schema_is_rejected() -> None:
    def reply(body: dict[str, Any]) -> Any:
        if "response_format" in body:
            return status(400, f"response_format type {body['response_format']['type']} is not supported")
        return ok("Solid answer, one slip.\nRating: [[8]]")

    rec = Recorder(reply)
    client = make_client(rec)

    async def go() -> tuple[Any, Any]:
        first = await client.judge(MESSAGES, SingleVerdict)
        second = await client.judge(MESSAGES[:1], SingleVerdict)
        await client.aclose()
        return first, second

    first, second = asyncio.run(go())
    assert [b.get("response_format", {}).get("type") for b in rec.bodies] == [
        "json_schema", "json_object", None, None]
    assert first.status == "ok" and first.verdict.rating == 8 and first.attempts == 1
    assert first.usage.calls == 3  # the two refusals are spent calls, not retries
    assert second.usage.calls == 1 and client.mode == "text"


def test_other_400_is_an_api_error_not_a_step_down() -> None:
    rec = Recorder(status(400, "This model's maximum context length is 4096 tokens"))
    client = make_client(rec)
    result = run(client)
    assert result.status == "api_error" and "HTTP 400" in result.error and "context length" in result.error
    assert len(rec.bodies) == 1 and client.mode == "json_schema"


@pytest.mark.parametrize("text,schema,expected", [
    ('Sure!\n```json\n{"explanation": "fine", "issues": [], "rating": 9}\n```', SingleVerdict, 9),
    ('Verdict follows {"explanation":"x","issues":["Factual Error","made-up"],"rating":"4","extra":1} bye',
     SingleVerdict, 4),
    ("Right result. [[7]] [[correct]]", SingleVerdictWithReference, 7),
    ("A is better. [[A]]", PairVerdict, "A>B"),
    ("Same. [[C]]", PairVerdict, "A=B"),
    ("B is far better [[B>>A]]", PairVerdict, "B>>A"),
])
def test_text_verdicts_parse(text: str, schema: type, expected: Any) -> None:
    verdict, error = parse_verdict(text, schema)
    assert error is None
    assert (verdict.verdict if schema is PairVerdict else verdict.rating) == expected


def test_unknown_issue_names_become_other() -> None:
    verdict, _ = parse_verdict('{"explanation":"x","issues":["Factual Error","made-up","other"],'
                               '"rating":4}', SingleVerdict)
    assert verdict.issues == ["factual_error", "other"]


@pytest.mark.parametrize("text,schema,fragment", [
    ("", SingleVerdict, "empty"),
    ("no verdict here", SingleVerdict, "no JSON verdict"),
    ("[[7]] then again [[8]]", SingleVerdict, "conflicting rating"),
    ("[[7.5]]", SingleVerdict, "whole number"),
    ("[[11]]", SingleVerdict, "outside 1-10"),
    ("[[7]] but is it right?", SingleVerdictWithReference, "[[correct]]"),
    ("[[A]] no wait [[B]]", PairVerdict, "conflicting verdict"),
    ('{"explanation": "x", "issues": [], "rating": 12}', SingleVerdict, "rating"),
])
def test_text_verdict_failures_say_why(text: str, schema: type, fragment: str) -> None:
    verdict, error = parse_verdict(text, schema)
    assert verdict is None and fragment in error


# --------------------------------------------------------------------------- retries


def test_server_errors_are_retried_a_bounded_number_of_times() -> None:
    rec = Recorder(status(503, "overloaded"))
    sleeps: list[float] = []
    result = run(make_client(rec, sleeps=sleeps, max_retries=3, backoff_base_s=1.0))
    assert result.status == "api_error" and result.verdict is None and "HTTP 503" in result.error
    assert len(rec.bodies) == 4 and result.attempts == 4 and result.usage.calls == 4
    assert len(sleeps) == 3  # no sleep after the last attempt
    for i, s in enumerate(sleeps):  # full jitter in [ceiling/2, ceiling], ceiling doubling
        assert 2 ** i / 2 <= s <= 2 ** i


def test_rate_limit_honours_retry_after_then_succeeds() -> None:
    rec = Recorder(status(429, "slow down", {"retry-after": "3"}), ok(json.dumps(GOOD_SINGLE)))
    sleeps: list[float] = []
    result = run(make_client(rec, sleeps=sleeps))
    assert result.status == "ok" and result.attempts == 2 and sleeps == [3.0]


def test_timeouts_and_connection_errors_are_retried() -> None:
    rec = Recorder(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), ok(json.dumps(GOOD_SINGLE)))
    result = run(make_client(rec, sleeps=[], max_retries=2))
    assert result.status == "ok" and result.attempts == 3
    rec = Recorder(httpx.ReadTimeout("slow"))
    result = run(make_client(rec, sleeps=[], max_retries=1))
    assert result.status == "api_error" and result.error.startswith("timeout") and len(rec.bodies) == 2


@pytest.mark.parametrize("code", [401, 403, 404, 422])
def test_client_errors_are_not_retried(code: int) -> None:
    rec = Recorder(status(code, "nope"))
    result = run(make_client(rec, sleeps=[], max_retries=5))
    assert result.status == "api_error" and len(rec.bodies) == 1 and f"HTTP {code}" in result.error


@pytest.mark.parametrize("max_retries,max_invalid_retries,requests",
                         [(4, 1, 2), (2, 5, 3), (3, 0, 1), (2, None, 3)])
def test_invalid_output_is_retried_then_recorded_with_its_text(max_retries: int,
                                                               max_invalid_retries: int | None,
                                                               requests: int) -> None:
    rec = Recorder(ok("I liked it a lot!"))
    sleeps: list[float] = []
    result = run(make_client(rec, sleeps=sleeps, max_retries=max_retries,
                             max_invalid_retries=max_invalid_retries))
    assert result.status == "invalid_output" and result.verdict is None
    assert result.raw == "I liked it a lot!" and "no JSON verdict" in result.error
    assert len(rec.bodies) == requests and sleeps == []  # retried at once, bounded by both budgets


def test_truncated_reply_says_so() -> None:
    rec = Recorder(ok('{"explanation": "and so on and so on', finish_reason="length"))
    result = run(make_client(rec, max_retries=0, max_tokens=64))
    assert result.status == "invalid_output" and "cut at 64 tokens" in result.error


def test_invalid_then_valid() -> None:
    rec = Recorder(ok("hmm"), ok(json.dumps(GOOD_SINGLE)))
    result = run(make_client(rec, max_retries=1))
    assert result.status == "ok" and result.attempts == 2 and result.usage.calls == 2


# --------------------------------------------------------------------------- cache, concurrency


def test_cache_makes_a_rerun_free(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    rec = Recorder(ok(json.dumps(GOOD_SINGLE), prompt_tokens=50, completion_tokens=9))
    with JudgeCache(path) as cache:
        first = run(make_client(rec, cache=cache))
    assert len(rec.bodies) == 1
    rec2 = Recorder(status(500))
    with JudgeCache(path) as cache:  # a new process would open the same file
        client = make_client(rec2, cache=cache)
        again = run(client)
        assert len(cache) == 1
    assert rec2.bodies == [] and again.cached and again.usage.calls == 0
    assert again.verdict == first.verdict and again.raw == first.raw
    assert (again.usage.prompt_tokens, again.usage.completion_tokens) == (50, 9)
    assert client.stats.calls == 0 and client.stats.cache_hits == 1


def test_cache_key_covers_messages_schema_and_parameters(tmp_path: Path) -> None:
    rec = Recorder(lambda body: ok(json.dumps({**GOOD_SINGLE, "correct": True})
                                   if "correct" in body["response_format"]["json_schema"]["schema"]
                                   ["properties"] else json.dumps(GOOD_SINGLE)))
    with JudgeCache(tmp_path / "c.sqlite") as cache:
        run(make_client(rec, cache=cache))
        run(make_client(rec, cache=cache), messages=MESSAGES[1:])
        run(make_client(rec, cache=cache), schema=SingleVerdictWithReference)
        run(make_client(rec, cache=cache, max_tokens=99))
        run(make_client(rec, cache=cache))  # the first request again: a hit
        assert len(cache) == 4
    assert len(rec.bodies) == 4


def test_failures_are_never_cached(tmp_path: Path) -> None:
    with JudgeCache(tmp_path / "c.sqlite") as cache:
        run(make_client(Recorder(ok("no verdict")), cache=cache, max_retries=0))
        run(make_client(Recorder(status(500)), cache=cache, max_retries=0, sleeps=[]))
        assert len(cache) == 0
        rec = Recorder(ok(json.dumps(GOOD_SINGLE)))
        assert run(make_client(rec, cache=cache)).status == "ok" and len(rec.bodies) == 1


def test_concurrency_limit_bounds_requests_in_flight() -> None:
    state = {"now": 0, "max": 0}

    async def handler(request: Any) -> Any:
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return ok(json.dumps(GOOD_SINGLE))

    client = make_client(handler, concurrency=3)

    async def go() -> list[Any]:
        try:
            return await asyncio.gather(*[client.judge([{"role": "user", "content": str(i)}], SingleVerdict)
                                          for i in range(20)])
        finally:
            await client.aclose()

    results = asyncio.run(go())
    assert all(r.status == "ok" for r in results)
    assert state["max"] == 3 and client.stats.calls == 20


def test_api_key_is_sent_but_never_stored(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: Any) -> Any:
        seen.append(request.headers["authorization"])
        return ok(json.dumps(GOOD_SINGLE))

    with JudgeCache(tmp_path / "c.sqlite") as cache:
        run(make_client(handler, cache=cache))
    assert seen == ["Bearer sk-test"]
    assert b"sk-test" not in (tmp_path / "c.sqlite").read_bytes()
