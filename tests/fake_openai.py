"""A tiny OpenAI-compatible HTTP server on 127.0.0.1 for tests and bench/judge_client.py.

Stdlib asyncio only (HTTP/1.1 with keep-alive): ``POST /v1/chat/completions`` answers through a
*responder* (request body -> `Reply`) after a fixed artificial latency, ``GET /v1/models`` and
``GET /health`` answer at once. Every chat request body is recorded in ``server.requests``.

Run it in a background thread (``with FakeOpenAIServer(...) as srv``) or as its own process:
``python tests/fake_openai.py --port 8123 --latency-s 0.5`` (prints ``READY <port>`` when listening).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def sdk_httpx() -> Any:
    """The httpx module the installed openai SDK is built on (``httpx2`` in openai 3.x, else httpx)."""
    import openai

    for cls in openai.DefaultAsyncHttpxClient.__mro__:
        if cls.__name__ == "AsyncClient":
            return importlib.import_module(cls.__module__.split(".")[0])
    raise RuntimeError("cannot find the openai SDK's http client module")


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float | None = None  # None: the server's latency


def completion(content: str, *, prompt_tokens: int = 11, completion_tokens: int = 7,
               finish_reason: str = "stop", model: str = "fake-judge") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def error_body(message: str, status: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": status}}


def default_responder(body: dict[str, Any]) -> Reply:
    """A valid verdict for whatever is asked: JSON when a schema is given, [[...]] text otherwise."""
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or {}
    props = schema.get("properties", {})
    user = body["messages"][-1]["content"]
    is_pair = "verdict" in props or "ANSWER A" in user or "ASSISTANT A" in user
    if props:
        if is_pair:
            verdict: dict[str, Any] = {"explanation": "A is clearer.", "issues_a": [], "issues_b": ["other"],
                                       "verdict": "A>B"}
        else:
            verdict = {"explanation": "Fine.", "issues": [], "rating": 7}
            if "correct" in props:
                verdict["correct"] = True
        return Reply(body=completion(json.dumps(verdict)))
    if is_pair:
        return Reply(body=completion("A is clearer. [[A]]"))
    text = "Fine. Rating: [[7]]"
    if "REFERENCE ANSWER" in user:
        text += " [[correct]]"
    return Reply(body=completion(text))


Responder = Callable[[dict[str, Any]], Reply]


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    """One HTTP/1.1 request: (method, path without query, lower-cased headers, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, v in
               (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
    length = int(headers.get("content-length", "0"))
    raw = await reader.readexactly(length) if length else b""
    return method, path.split("?")[0], headers, raw


class FakeOpenAIServer:
    """Serve the fake API on 127.0.0.1 from a background thread."""

    def __init__(self, responder: Responder = default_responder, *, latency_s: float = 0.0,
                 port: int = 0):
        self.responder = responder
        self.latency_s = latency_s
        self.port = port
        self.requests: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                method, path, headers, raw = await read_request(reader)
                reply = await self._route(method, path, raw)
                payload = json.dumps(reply.body if reply.body is not None else {}).encode()
                extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
                writer.write(f"HTTP/1.1 {reply.status} X\r\ncontent-type: application/json\r\n"
                             f"content-length: {len(payload)}\r\n{extra}\r\n".encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _route(self, method: str, path: str, raw: bytes) -> Reply:
        if method == "GET" and path == "/health":
            return Reply(body={})
        if method == "GET" and path.endswith("/models"):
            return Reply(body={"object": "list", "data": [
                {"id": "fake-judge", "object": "model", "created": 0, "owned_by": "tests"}]})
        if method == "POST" and path.endswith("/chat/completions"):
            body = json.loads(raw)
            self.requests.append(body)
            reply = self.responder(body)
            delay = self.latency_s if reply.delay_s is None else reply.delay_s
            if delay > 0:
                await asyncio.sleep(delay)
            return reply
        return Reply(status=404, body=error_body(f"no route {method} {path}", 404))

    def __enter__(self) -> "FakeOpenAIServer":
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._start())
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None and self._server is not None

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-s", type=float, default=0.0)
    args = ap.parse_args()

    async def serve() -> None:
        server = FakeOpenAIServer(latency_s=args.latency_s, port=args.port)
        await server._start()
        print(f"READY {server.port}", flush=True)
        assert server._server is not None
        async with server._server:
            await server._server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
