"""A judge fleet: one judge model served at several OpenAI-compatible endpoints, used as one
`JudgeClient` (``--judge-base-url A --judge-base-url B ...``).

`FleetJudgeClient` holds one `OpenAIJudgeClient` per endpoint. They share one `JudgeCache`, whose
key is the model, the messages, the sampling parameters and the schema -- never the endpoint -- so
caching and resume behave exactly as with one endpoint. Each request goes to the **least-loaded
healthy endpoint** (fewest requests in flight for its capacity); every endpoint has its own
concurrency limit (``--concurrency`` applies per endpoint), and a judgment waits for a free slot
at a healthy endpoint.

Retries and failover, the rule (kept in one place, `FleetJudgeClient.judge`):

* each member makes exactly one counted request per call: it is built with ``max_retries=0`` and
  ``max_invalid_retries=0`` (an output-mode step-down is not counted, as with one endpoint), and it
  never sleeps;
* the fleet retries: at most ``1 + max_retries`` counted requests per judgment **across the whole
  fleet**, of which at most ``1 + max_invalid_retries`` may end in an invalid output -- the same
  bound as one `OpenAIJudgeClient`;
* an endpoint failure (connection error, timeout, HTTP 408/409/429/5xx, a malformed reply) **rests**
  that endpoint: no request is sent to it for ``rest_base_s * 2**(n-1)`` seconds (``n``: its failures
  in a row, at most ``rest_max_s``; at least what ``Retry-After`` asked, within ``rest_max_s``), and
  the judgment's next try goes to another endpoint at once. A failure of a request that was sent
  before the endpoint's current rest began does not lengthen the rest (a burst of in-flight
  failures is one event). When every endpoint rests, the next try waits for the first one to come
  back: that wait is the backoff. A success ends the endpoint's run of failures;
* an invalid output is retried on the least-loaded endpoint (the endpoint is not rested); any other
  error (400, 404, ...) is final.

A judgment that fails every try is returned failed (``api_error`` / ``invalid_output``, with the
last reply's raw text), exactly as from one endpoint, and the stage records it as such: never a
verdict. Token and request totals (`stats`) sum over the endpoints; `endpoint_stats` gives each
endpoint's requests and failures for the grade summary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from judge.grade.cache import JudgeCache
from judge.grade.client import ClientStats, JudgeResult, OpenAIJudgeClient
from judge.schemas import Usage

REST_BASE_S = 1.0
REST_MAX_S = 60.0


@dataclass(frozen=True)
class EndpointStats:
    base_url: str
    requests: int  # HTTP requests sent to it
    failures: int  # requests that failed at the endpoint (each one rested it or found it resting)


def describe_endpoints(stats: Sequence[EndpointStats]) -> str:
    """``"2 judge endpoints: URL 9 requests, URL 5 requests (2 failed)"``; "" for one endpoint."""
    if len(stats) < 2:
        return ""
    parts = [f"{s.base_url} {s.requests} requests" + (f" ({s.failures} failed)" if s.failures else "")
             for s in stats]
    return f"{len(stats)} judge endpoints: " + ", ".join(parts)


def open_client(endpoints: Sequence[Any], *, cache: JudgeCache | None, concurrency: int,
                max_retries: int, max_invalid_retries: int | None = None,
                **client_options: Any) -> OpenAIJudgeClient | "FleetJudgeClient":
    """The judge client for ``endpoints`` (`judge.grade.server.JudgeEndpoint`, one model and key):
    an `OpenAIJudgeClient` for one endpoint, a `FleetJudgeClient` for several."""
    first = endpoints[0]
    if len(endpoints) == 1:
        return OpenAIJudgeClient(first.model, base_url=first.base_url, api_key=first.api_key,
                                 cache=cache, concurrency=concurrency, max_retries=max_retries,
                                 max_invalid_retries=max_invalid_retries, **client_options)
    return FleetJudgeClient.open(first.model, [e.base_url for e in endpoints], api_key=first.api_key,
                                 cache=cache, concurrency=concurrency, max_retries=max_retries,
                                 max_invalid_retries=max_invalid_retries, rest_base_s=REST_BASE_S,
                                 rest_max_s=REST_MAX_S, **client_options)


@dataclass
class _Endpoint:
    client: OpenAIJudgeClient
    capacity: int
    in_flight: int = 0
    routed: int = 0  # requests routed here (a tie-break, so equal loads alternate)
    failures: int = 0
    streak: int = 0  # failures in a row that started a rest
    rest_from: float = -math.inf
    rest_until: float = -math.inf


class FleetJudgeClient:
    """A `JudgeClient` over several endpoints of one judge model (see the module docstring)."""

    def __init__(self, members: Sequence[OpenAIJudgeClient], *, max_retries: int = 4,
                 max_invalid_retries: int | None = None, rest_base_s: float = REST_BASE_S,
                 rest_max_s: float = REST_MAX_S):
        if not members:
            raise ValueError("a fleet needs at least one endpoint")
        if len({m.model for m in members}) != 1:
            raise ValueError("every endpoint of a fleet serves the same judge model")
        if any(m.max_retries or m.max_invalid_retries for m in members):
            raise ValueError("fleet members make one attempt per call (max_retries=0, "
                             "max_invalid_retries=0): the fleet retries")
        if max_retries < 0 or rest_base_s < 0 or rest_max_s < rest_base_s:
            raise ValueError("max_retries >= 0 and 0 <= rest_base_s <= rest_max_s")
        self.model = members[0].model
        self.max_retries = max_retries
        self.max_invalid_retries = max_retries if max_invalid_retries is None else max_invalid_retries
        self.rest_base_s = rest_base_s
        self.rest_max_s = rest_max_s
        self._endpoints = [_Endpoint(m, m.concurrency) for m in members]
        self._waiters: deque[asyncio.Future[None]] = deque()

    @classmethod
    def open(cls, model: str, base_urls: Sequence[str], *, api_key: str, cache: JudgeCache | None,
             concurrency: int, max_retries: int = 4, max_invalid_retries: int | None = None,
             rest_base_s: float = REST_BASE_S, rest_max_s: float = REST_MAX_S,
             **client_options: Any) -> "FleetJudgeClient":
        """One `OpenAIJudgeClient` per URL (same key, one shared cache), as fleet members."""
        members = [OpenAIJudgeClient(model, base_url=url, api_key=api_key, cache=cache,
                                     concurrency=concurrency, max_retries=0, max_invalid_retries=0,
                                     **client_options) for url in base_urls]
        return cls(members, max_retries=max_retries, max_invalid_retries=max_invalid_retries,
                   rest_base_s=rest_base_s, rest_max_s=rest_max_s)

    # ------------------------------------------------------------------ public
    @property
    def stats(self) -> ClientStats:
        """Totals over every endpoint (a fresh record on each read)."""
        total = ClientStats()
        for e in self._endpoints:
            s = e.client.stats
            total.calls += s.calls
            total.cache_hits += s.cache_hits
            total.prompt_tokens += s.prompt_tokens
            total.completion_tokens += s.completion_tokens
        return total

    def endpoint_stats(self) -> list[EndpointStats]:
        return [EndpointStats(e.client.base_url or "", e.client.stats.calls, e.failures)
                for e in self._endpoints]

    async def judge(self, messages: list[dict[str, str]], schema: type[BaseModel]) -> JudgeResult:
        hit = self._endpoints[0].client.cached(messages, schema)  # the cache is shared
        if hit is not None:
            return hit
        attempts = invalid = calls = prompt_tokens = completion_tokens = 0
        result: JudgeResult | None = None
        while attempts <= self.max_retries:
            endpoint, sent_at = await self._acquire()
            try:
                result = await endpoint.client.judge(messages, schema)
            finally:
                self._release(endpoint)
            calls += result.usage.calls
            prompt_tokens += result.usage.prompt_tokens
            completion_tokens += result.usage.completion_tokens
            attempts += max(1, result.attempts)
            if result.status == "ok":
                endpoint.streak = 0
                break
            if result.retryable:
                endpoint.failures += 1
                self._rest(endpoint, sent_at, result.retry_after_s)
                continue
            if result.status == "invalid_output":
                invalid += 1
                if invalid > self.max_invalid_retries:
                    break
                continue
            break  # a final error (400, 404...): another endpoint would say the same
        assert result is not None
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, calls=calls)
        return dataclasses.replace(result, usage=usage, attempts=attempts)

    async def check(self) -> None:
        """Every endpoint answers (`OpenAIJudgeClient.check`; the first failure is the error)."""
        for e in self._endpoints:
            await e.client.check()

    async def aclose(self) -> None:
        for e in self._endpoints:
            await e.client.aclose()

    # ------------------------------------------------------------------ routing
    def _pick(self, now: float) -> _Endpoint | None:
        ready = [e for e in self._endpoints if e.rest_until <= now and e.in_flight < e.capacity]
        if not ready:
            return None
        return min(ready, key=lambda e: (e.in_flight / e.capacity, e.routed))

    async def _acquire(self) -> tuple[_Endpoint, float]:
        """A slot at the least-loaded healthy endpoint, waiting (in line) for one to free up."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            endpoint = self._pick(now)
            if endpoint is not None:
                endpoint.in_flight += 1
                endpoint.routed += 1
                return endpoint, now
            # woken by a released slot or by an endpoint coming back from its rest
            ticket: asyncio.Future[None] = loop.create_future()
            self._waiters.append(ticket)
            try:
                await ticket
            except asyncio.CancelledError:
                if ticket.done() and not ticket.cancelled():
                    self._wake(1)  # pass the wake-up on to the next in line
                raise

    def _wake(self, n: int) -> None:
        while n > 0 and self._waiters:
            ticket = self._waiters.popleft()
            if not ticket.done():
                ticket.set_result(None)
                n -= 1

    def _release(self, endpoint: _Endpoint) -> None:
        endpoint.in_flight -= 1
        self._wake(1)

    def _rest(self, endpoint: _Endpoint, sent_at: float, retry_after_s: float | None) -> None:
        """Rest ``endpoint`` after a failure of a request sent at ``sent_at``."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if sent_at < endpoint.rest_from:
            return  # sent before its current rest began: the same failure, already answered
        endpoint.streak += 1
        rest_s = min(self.rest_max_s, self.rest_base_s * 2 ** (endpoint.streak - 1))
        if retry_after_s is not None:
            rest_s = max(rest_s, min(retry_after_s, self.rest_max_s))
        endpoint.rest_from, endpoint.rest_until = now, now + rest_s
        loop.call_later(rest_s, self._come_back, endpoint, endpoint.rest_until)

    def _come_back(self, endpoint: _Endpoint, until: float) -> None:
        """The end of a rest (a timer's callback may run a hair early: the rest ends here)."""
        if endpoint.rest_until == until:
            endpoint.rest_until = -math.inf
        self._wake(endpoint.capacity)
