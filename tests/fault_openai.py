"""A fault-injecting OpenAI-compatible server on 127.0.0.1, for the reliability tests.

Each ``POST /v1/chat/completions`` either gets a valid reply (from a responder, by default
`tests.fake_openai.default_responder`) or, with probability ``sum(rates.values())``, one fault drawn
in proportion to its rate from a seeded generator:

    429             HTTP 429 with ``Retry-After`` (seconds, configurable)
    500, 503        HTTP 500 / 503 with an OpenAI-style error body
    hang            no reply for ``hang_s`` (longer than the client's timeout), then close
    close           close the connection right after reading the request, no reply
    truncated_json  HTTP 200 whose JSON body is cut in the middle (Content-Length of the cut body)
    schema_invalid  HTTP 200, a chat completion whose content is JSON that is no valid verdict
    empty_choices   HTTP 200, a chat completion with ``"choices": []``
    not_completion  HTTP 200, JSON that is no chat completion (a list, a choice without a message,
                    a non-string content), in turn

A ``script`` of fault names (``"ok"`` allowed) fixes the fate of the first requests, in order,
before the rates apply: a test can inject exactly one fault of each kind.
``authorizations`` records each chat request's ``Authorization`` header. With ``leak_auth`` the
server is hostile: it writes that header back into every error message and reply text, to test
that the client keeps a key off disk even then; with ``reject_key = True`` every request gets a
401 that quotes the key it carried.
Every chat request is counted in ``counts`` under its fault name (or ``"ok"``), so a test can
account for every request. ``GET /v1/models`` always answers (it is the client's pre-flight check).
Stdlib asyncio only; bound to 127.0.0.1; a hanging reply is bounded by ``hang_s`` and cancelled
when the server stops.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from fake_openai import Reply, completion, default_responder, error_body, read_request

FAULTS: tuple[str, ...] = ("429", "500", "503", "hang", "close", "truncated_json",
                           "schema_invalid", "empty_choices", "not_completion")
NOT_COMPLETIONS: tuple[Any, ...] = (
    [1, 2], {"object": "chat.completion", "choices": [{"index": 0}]},
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": 5}}]}, "text")

Responder = Callable[[dict[str, Any]], Reply]


def even_rates(total: float) -> dict[str, float]:
    """``total`` fault probability spread evenly over every fault kind."""
    return {f: total / len(FAULTS) for f in FAULTS}


class FaultOpenAIServer:
    """Serve the faulty API from a background thread: ``with FaultOpenAIServer(rates) as srv``."""

    def __init__(self, rates: dict[str, float], *, seed: int = 0,
                 responder: Responder = default_responder, hang_s: float = 2.0,
                 retry_after: str = "0", script: list[str] | None = None,
                 leak_auth: bool = False):
        unknown = (set(rates) | set(script or [])) - set(FAULTS) - {"ok"}
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        if sum(rates.values()) > 1.0:
            raise ValueError("fault rates add up to more than 1")
        self.rates = dict(rates)
        self.script = list(script or [])
        self.leak_auth = leak_auth
        self.authorizations: list[str] = []
        self.reject_key = False  # answer every request with 401, quoting the key sent
        self.rejected = 0
        self.responder = responder
        self.hang_s = hang_s
        self.retry_after = retry_after
        self.counts: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> int:
        return sum(self.counts.values())

    def draw(self) -> str:
        """The fault (or ``"ok"``) for the next request."""
        if self.script:
            return self.script.pop(0)
        u = self._rng.random()
        for fault in FAULTS:
            rate = self.rates.get(fault, 0.0)
            if u < rate:
                return fault
            u -= rate
        return "ok"

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                method, path, headers, raw = await read_request(reader)
                if self.reject_key:
                    self.rejected += 1
                    auth = headers.get("authorization", "")
                    status, payload, extra = 401, json.dumps(error_body(
                        f"Incorrect API key provided: {auth.removeprefix('Bearer ')}", 401)).encode(), {}
                elif method == "POST" and path.endswith("/chat/completions"):
                    fault = self.draw()
                    self.counts[fault] += 1
                    self.authorizations.append(headers.get("authorization", ""))
                    self.requests.append(json.loads(raw))
                    if fault == "close":
                        return
                    if fault == "hang":
                        await asyncio.sleep(self.hang_s)
                        return
                    status, payload, extra = self._reply(fault, json.loads(raw))
                    if self.leak_auth:
                        auth = headers.get("authorization", "")
                        payload = payload.replace(b"(injected)", f"(injected; you sent {auth})".encode())
                        payload = payload.replace(b"Fine.", f"Fine. You sent {auth}.".encode())
                elif method == "GET" and path.endswith("/models"):
                    status, payload, extra = 200, json.dumps({"object": "list", "data": [
                        {"id": "fake-judge", "object": "model", "created": 0,
                         "owned_by": "tests"}]}).encode(), {}
                else:
                    status, payload, extra = 404, json.dumps(error_body("no route", 404)).encode(), {}
                more = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                             f"content-length: {len(payload)}\r\n{more}\r\n".encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    def _reply(self, fault: str, body: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
        if fault == "429":
            return 429, json.dumps(error_body("rate limited (injected)", 429)).encode(), \
                {"retry-after": self.retry_after}
        if fault in ("500", "503"):
            return int(fault), json.dumps(error_body(f"server error {fault} (injected)",
                                                     int(fault))).encode(), {}
        if fault == "empty_choices":
            data = completion("")
            data["choices"] = []
            return 200, json.dumps(data).encode(), {}
        if fault == "not_completion":
            body_of = NOT_COMPLETIONS[self.counts[fault] % len(NOT_COMPLETIONS)]
            return 200, json.dumps(body_of).encode(), {}
        if fault == "schema_invalid":
            # JSON, but no valid verdict of any schema: rating out of range, verdict unknown
            content = json.dumps({"explanation": 3, "rating": 42, "verdict": "A>>>B", "issues": "x"})
            return 200, json.dumps(completion(content)).encode(), {}
        reply = self.responder(body)
        payload = json.dumps(reply.body if reply.body is not None else {}).encode()
        if fault == "truncated_json":
            return reply.status, payload[: len(payload) // 2], reply.headers
        return reply.status, payload, reply.headers

    # ------------------------------------------------------------------ lifetime
    def __enter__(self) -> "FaultOpenAIServer":
        self._loop = asyncio.new_event_loop()

        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
            self.port = self._server.sockets[0].getsockname()[1]

        self._loop.run_until_complete(start())
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
