"""The judge fleet: routing, per-endpoint concurrency, resting and failover, the retry bound, the
shared cache -- through real `OpenAIJudgeClient` members whose HTTP layer is a mock transport."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fake_openai import completion, error_body, sdk_httpx
from judge.grade.cache import JudgeCache
from judge.grade.client import OpenAIJudgeClient
from judge.grade.fleet import EndpointStats, FleetJudgeClient, describe_endpoints
from judge.schemas import SingleVerdict

httpx = sdk_httpx()
GOOD = {"explanation": "ok", "issues": [], "rating": 6}


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"grade answer {i}"}]


class Endpoint:
    """A mock endpoint: replies from ``reply(n)`` (n: its 1-based request number) after
    ``latency_s``, and records its requests and the most it had in flight at once."""

    def __init__(self, reply: Callable[[int], Any] | None = None, latency_s: float = 0.0):
        self.reply = reply or (lambda n: httpx.Response(200, json=completion(json.dumps(GOOD))))
        self.latency_s = latency_s
        self.requests: list[float] = []  # loop time of each request
        self.in_flight = self.most_in_flight = 0

    async def __call__(self, request: Any) -> Any:
        self.requests.append(asyncio.get_running_loop().time())
        n = len(self.requests)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            out = self.reply(n)
            if isinstance(out, Exception):
                raise out
            return out
        finally:
            self.in_flight -= 1


def fail(code: int = 500, headers: dict[str, str] | None = None) -> Any:
    return httpx.Response(code, json=error_body("boom", code), headers=headers or {})


def member(handler: Endpoint, url: str, *, concurrency: int = 2, cache: JudgeCache | None = None
           ) -> OpenAIJudgeClient:
    return OpenAIJudgeClient("judge-model", base_url=url, api_key="sk-test", cache=cache,
                             concurrency=concurrency, max_retries=0, max_invalid_retries=0,
                             http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def fleet(*handlers: Endpoint, concurrency: int = 2, cache: JudgeCache | None = None,
          **kw: Any) -> FleetJudgeClient:
    members = [member(h, f"http://judge-{i}.test/v1", concurrency=concurrency, cache=cache)
               for i, h in enumerate(handlers)]
    return FleetJudgeClient(members, **kw)


def judge_all(client: FleetJudgeClient, n: int, first: int = 0) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return await asyncio.gather(*[client.judge(messages(first + i), SingleVerdict)
                                          for i in range(n)])
        finally:
            await client.aclose()

    return asyncio.run(go())


# --------------------------------------------------------------------------- routing


def test_requests_spread_with_per_endpoint_concurrency() -> None:
    a, b = Endpoint(latency_s=0.02), Endpoint(latency_s=0.02)
    client = fleet(a, b, concurrency=3)
    results = judge_all(client, 12)
    assert [r.status for r in results] == ["ok"] * 12
    # equal endpoints share the work (6 each on an idle machine; the first 6 go out 3 and 3)
    assert len(a.requests) + len(b.requests) == 12 and min(len(a.requests), len(b.requests)) >= 4
    assert a.most_in_flight == b.most_in_flight == 3  # --concurrency is per endpoint
    assert client.stats.calls == 12 and client.stats.prompt_tokens == 12 * 11
    assert client.endpoint_stats() == [EndpointStats("http://judge-0.test/v1", len(a.requests), 0),
                                       EndpointStats("http://judge-1.test/v1", len(b.requests), 0)]


def test_the_least_loaded_endpoint_gets_the_request() -> None:
    slow, fast = Endpoint(latency_s=0.6), Endpoint(latency_s=0.01)
    results = judge_all(fleet(slow, fast, concurrency=1), 8)
    assert all(r.status == "ok" for r in results)
    # the slow endpoint holds its one slot for 0.6 s; the fast one takes the rest meanwhile
    assert len(slow.requests) == 1 and len(fast.requests) == 7


# --------------------------------------------------------------------------- resting and failover


def test_a_failing_endpoint_rests_and_its_judgment_goes_elsewhere() -> None:
    down, up = Endpoint(lambda n: fail(500)), Endpoint(latency_s=0.01)
    client = fleet(down, up, concurrency=2, rest_base_s=30.0)
    results = judge_all(client, 10)
    assert [r.status for r in results] == ["ok"] * 10
    # it got the first request and, equally loaded then, the third (its 2 slots); both failed
    # at once, one rest began, and nothing more reached it
    assert len(down.requests) == 2 and len(up.requests) == 10
    failed = [r for r in results if r.usage.calls == 2]
    assert len(failed) == 2 and all(r.attempts == 2 for r in failed)
    assert client.endpoint_stats() == [EndpointStats("http://judge-0.test/v1", 2, 2),
                                       EndpointStats("http://judge-1.test/v1", 10, 0)]


def test_connection_errors_and_429_rest_too() -> None:
    refused = Endpoint(lambda n: httpx.ConnectError("refused"))
    limited = Endpoint(lambda n: fail(429, {"retry-after": "0"}) if n == 1 else
                       httpx.Response(200, json=completion(json.dumps(GOOD))))
    client = fleet(refused, limited, concurrency=1, rest_base_s=0.05)
    results = judge_all(client, 3)
    assert [r.status for r in results] == ["ok"] * 3
    assert len(limited.requests) == 4  # its 429, then one success per judgment
    assert [s.failures for s in client.endpoint_stats()] == [len(refused.requests), 1]


def test_when_every_endpoint_rests_the_next_try_waits_for_the_first_back() -> None:
    # each endpoint fails its first request, then answers
    a = Endpoint(lambda n: fail(503) if n == 1 else httpx.Response(200, json=completion(json.dumps(GOOD))))
    b = Endpoint(lambda n: fail(503) if n == 1 else httpx.Response(200, json=completion(json.dumps(GOOD))))
    client = fleet(a, b, concurrency=1, rest_base_s=0.25)
    t0 = time.perf_counter()
    [result] = judge_all(client, 1)
    waited = time.perf_counter() - t0
    assert result.status == "ok" and result.attempts == 3 and result.usage.calls == 3
    assert 0.2 <= waited < 2.0  # the third try waited out a 0.25 s rest
    assert b.requests[0] - a.requests[0] < 0.1  # the second try went to the other one at once
    assert a.requests[1] - a.requests[0] >= 0.2


def test_the_rest_grows_exponentially_and_is_bounded() -> None:
    a = Endpoint(lambda n: fail(500) if n <= 3 else httpx.Response(200, json=completion(json.dumps(GOOD))))
    client = fleet(a, Endpoint(lambda n: fail(500)), concurrency=1, rest_base_s=0.1,
                   rest_max_s=0.15, max_retries=8)
    [result] = judge_all(client, 1)
    assert result.status == "ok" and result.attempts == 7  # a: 4 requests, the other: 3 between
    gaps = [t1 - t0 for t0, t1 in zip(a.requests, a.requests[1:])]
    # rests of 0.1, then 0.2 and 0.4 capped at 0.15 s (upper bounds leave room for a loaded machine)
    assert len(gaps) == 3
    assert 0.095 <= gaps[0] < 0.2 and 0.145 <= gaps[1] < 0.35 and 0.145 <= gaps[2] < 0.35


def test_a_judgment_failing_everywhere_is_a_failure_within_the_retry_bound() -> None:
    a, b = Endpoint(lambda n: fail(500)), Endpoint(lambda n: fail(502))
    client = fleet(a, b, concurrency=1, rest_base_s=0.01, max_retries=3)
    [result] = judge_all(client, 1)
    assert result.status == "api_error" and result.verdict is None
    assert len(a.requests) + len(b.requests) == 4 == result.usage.calls == result.attempts  # 1 + 3
    assert result.error.startswith("HTTP 50") and result.retryable


def test_invalid_output_is_retried_without_resting_and_within_its_own_bound() -> None:
    bad = lambda n: httpx.Response(200, json=completion("no verdict here"))  # noqa: E731
    a, b = Endpoint(bad), Endpoint(bad)
    client = fleet(a, b, concurrency=1, max_retries=4, max_invalid_retries=1)
    [result] = judge_all(client, 1)
    assert result.status == "invalid_output" and result.raw == "no verdict here"
    assert result.usage.calls == 2 and len(a.requests) + len(b.requests) == 2
    assert [s.failures for s in client.endpoint_stats()] == [0, 0]


def test_a_final_error_is_not_failed_over() -> None:
    a, b = Endpoint(lambda n: fail(404)), Endpoint(lambda n: fail(404))
    [result] = judge_all(fleet(a, b), 1)
    assert result.status == "api_error" and "HTTP 404" in result.error
    assert len(a.requests) + len(b.requests) == 1


# --------------------------------------------------------------------------- cache and construction


def test_the_cache_does_not_depend_on_the_endpoint(tmp_path: Path) -> None:
    with JudgeCache(tmp_path / "cache.sqlite") as cache:
        a, b = Endpoint(), Endpoint()
        first = judge_all(fleet(a, b, cache=cache), 4)
        assert all(r.status == "ok" and not r.cached for r in first)
        assert len(a.requests) + len(b.requests) == 4
        again_client = fleet(a, b, cache=cache)
        again = judge_all(again_client, 4)
        assert all(r.cached for r in again) and len(a.requests) + len(b.requests) == 4
        assert again_client.stats.cache_hits == 4 and again_client.stats.calls == 0
        # a single endpoint that answered none of them finds them too
        alone = Endpoint()

        async def one() -> Any:
            c = member(alone, "http://elsewhere.test/v1", cache=cache)
            try:
                return await c.judge(messages(2), SingleVerdict)
            finally:
                await c.aclose()

        assert asyncio.run(one()).cached and alone.requests == []


def test_members_must_leave_the_retries_to_the_fleet() -> None:
    retrying = OpenAIJudgeClient("judge-model", base_url="http://a.test/v1", max_retries=2)
    with pytest.raises(ValueError, match="one attempt per call"):
        FleetJudgeClient([retrying])
    other = OpenAIJudgeClient("other-model", base_url="http://b.test/v1", max_retries=0,
                              max_invalid_retries=0)
    ok = OpenAIJudgeClient("judge-model", base_url="http://c.test/v1", max_retries=0,
                           max_invalid_retries=0)
    with pytest.raises(ValueError, match="same judge model"):
        FleetJudgeClient([ok, other])


def test_describe_endpoints() -> None:
    assert describe_endpoints([EndpointStats("http://a/v1", 3, 0)]) == ""
    assert describe_endpoints([EndpointStats("http://a/v1", 9, 0), EndpointStats("http://b/v1", 5, 2)]) == (
        "2 judge endpoints: http://a/v1 9 requests, http://b/v1 5 requests (2 failed)")


def test_parse_a_fleet_spec() -> None:
    from judge.errors import JudgeSpecError
    from judge.grade.server import JudgeSpec, endpoints_for, parse_judge_spec

    spec = parse_judge_spec("m", ["http://a:1/v1/", "http://b:2/v1"])
    assert spec == JudgeSpec("endpoint", "m", "http://a:1/v1", ("http://b:2/v1",))
    assert spec.base_urls == ("http://a:1/v1", "http://b:2/v1")
    assert spec.recorded_base_url() == ["http://a:1/v1", "http://b:2/v1"]
    one = parse_judge_spec("m", ["http://a:1/v1"])
    assert one == parse_judge_spec("m", "http://a:1/v1") and one.recorded_base_url() == "http://a:1/v1"
    assert parse_judge_spec("m", []) == JudgeSpec("openai", "m")
    assert [e.base_url for e in endpoints_for(spec)] == ["http://a:1/v1", "http://b:2/v1"]
    with pytest.raises(JudgeSpecError, match=r"http://a:1/v1 is given twice"):
        parse_judge_spec("m", ["http://a:1/v1", "http://b:2/v1", "http://a:1/v1/"])
    with pytest.raises(JudgeSpecError, match="must start with http://"):
        parse_judge_spec("m", ["http://a:1/v1", "ftp://b/v1"])
    with pytest.raises(JudgeSpecError, match="cannot be combined"):
        parse_judge_spec("local:x", ["http://a:1/v1", "http://b:2/v1"])
