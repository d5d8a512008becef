"""The judge seam: `JudgeClient` and its implementation on the ``openai`` SDK's async client.

`OpenAIJudgeClient.judge(messages, schema)` returns a `JudgeResult` and never raises for a failed
judgment: the failure is the result (``api_error`` or ``invalid_output``, with the raw text), never
a verdict. It works against any OpenAI-compatible base URL (OpenAI, vLLM, others):

* output: JSON-schema structured output (``strict``) first; when the endpoint rejects
  ``response_format`` (HTTP 400/422 naming it), the client steps down to ``json_object`` and then to
  plain text for the rest of the run; text is parsed and validated by `judge.grade.verdicts`.
* temperature 0; ``max_completion_tokens`` bounded.
* retries in one place (`OpenAIJudgeClient.judge`): HTTP 408/409/429/5xx, timeouts and connection
  errors are retried with exponential backoff and full jitter, honouring ``Retry-After``; an
  invalid output is retried at once, at most ``max_invalid_retries`` times (default: as many as
  ``max_retries``; a local judge at temperature 0 mostly repeats itself, so it gets fewer). At most ``1 + max_retries`` requests per judgment (a step down of
  the output mode is not counted). The SDK's own retries are off.
* a concurrency limit (a semaphore held only while a request is in flight, not while backing off).
* a disk cache (`judge.grade.cache`) consulted before any request; only valid verdicts are stored.
* token usage per judgment and in total (`ClientStats`).

API keys are passed in by the caller (read from the environment) and are never written anywhere.
"""

from __future__ import annotations

import asyncio
import copy
import email.utils
import functools
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from judge.grade.cache import CachedResponse, JudgeCache, request_key
from judge.schemas import Usage
from judge.grade.verdicts import parse_verdict

OutputMode = Literal["auto", "json_schema", "json_object", "text"]
ResultStatus = Literal["ok", "api_error", "invalid_output"]
_STEP_DOWN: dict[str, str] = {"json_schema": "json_object", "json_object": "text"}
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "structured", "guided", "schema")
_RETRY_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class JudgeResult:
    status: ResultStatus
    verdict: BaseModel | None  # set iff status == "ok"
    raw: str  # the judge's last reply text ("" when no reply came)
    error: str | None  # one line, when status != "ok"
    usage: Usage  # tokens and HTTP requests spent on this judgment (calls=0 for a cache hit)
    attempts: int  # requests that counted against the retry budget
    cached: bool = False
    # the last failure was the endpoint's (connection, timeout, 408/409/429/5xx, malformed reply):
    # another try, here later or at another endpoint (`judge.grade.fleet`), may succeed
    retryable: bool = False
    retry_after_s: float | None = None  # what the endpoint asked for with Retry-After, if anything


@dataclass
class ClientStats:
    """Totals over the client's life: what this invocation actually spent."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class JudgeClient(Protocol):
    model: str  # the judge model's name, recorded in every judgment
    stats: ClientStats

    async def judge(self, messages: list[dict[str, str]], schema: type[BaseModel]) -> JudgeResult: ...

    async def aclose(self) -> None: ...


def strict_json_schema(schema: type[BaseModel], *, max_text_chars: int | None = None) -> dict[str, Any]:
    """The verdict schema as strict structured output wants it: every property required, no extras.

    ``max_text_chars`` caps free-text fields (and issue lists at the vocabulary's size) so that a
    small local judge under constrained decoding cannot ramble until it hits the token limit; it is
    off for hosted endpoints, which may not accept ``maxLength``. Returns a fresh copy.
    """
    return copy.deepcopy(_strict_json_schema(schema, max_text_chars))


@functools.lru_cache(maxsize=64)
def _strict_json_schema(schema: type[BaseModel], max_text_chars: int | None) -> dict[str, Any]:
    """Built once per (schema, cap): pydantic's schema generation costs milliseconds. Do not mutate."""
    out = copy.deepcopy(schema.model_json_schema())

    def walk(node: dict[str, Any]) -> None:
        node.pop("default", None)
        if node.get("type") == "object" and isinstance(node.get("properties"), dict):
            node["required"] = list(node["properties"])
            node["additionalProperties"] = False
            for prop in node["properties"].values():
                if max_text_chars is not None and prop.get("type") == "string" and "enum" not in prop:
                    prop["maxLength"] = max_text_chars
                if max_text_chars is not None and prop.get("type") == "array":
                    prop["maxItems"] = len(prop.get("items", {}).get("enum", [])) or 16
                walk(prop)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key])
        for sub in node.get("$defs", {}).values():
            walk(sub)

    walk(out)
    return out


def default_http_client() -> Any:
    """The SDK's aiohttp-backed client when aiohttp is installed (half the CPU per request of the
    default httpx transport, which matters at high concurrency), else None: the SDK's default."""
    import importlib.util

    import openai

    if importlib.util.find_spec("aiohttp") is None or not hasattr(openai, "DefaultAioHttpClient"):
        return None
    try:
        return openai.DefaultAioHttpClient()
    except RuntimeError:  # the SDK build lacks its aiohttp bridge
        return None


def sampling_params(max_tokens: int) -> dict[str, object]:
    return {"temperature": 0.0, "max_completion_tokens": max_tokens}


def judge_request_key(model: str, messages: list[dict[str, str]], schema: type[BaseModel], *,
                      max_tokens: int, max_text_chars: int | None) -> str:
    """The cache key of one judge request (what `OpenAIJudgeClient` would send)."""
    return request_key(model, messages, sampling_params(max_tokens),
                       _strict_json_schema(schema, max_text_chars))


def _retry_after_s(headers: Any) -> float | None:
    """Seconds asked for by ``Retry-After`` / ``retry-after-ms``, if any."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


@dataclass
class _Outcome:
    kind: Literal["reply", "transient", "fatal", "format_rejected"]
    text: str = ""
    error: str | None = None
    retry_after_s: float | None = None
    finish_reason: str | None = None
    usage: tuple[int, int] = (0, 0)


class OpenAIJudgeClient:
    """A `JudgeClient` over ``openai.AsyncOpenAI`` for any OpenAI-compatible endpoint."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str = "EMPTY",
                 cache: JudgeCache | None = None, concurrency: int = 8, max_retries: int = 4,
                 max_invalid_retries: int | None = None, timeout_s: float = 120.0, max_tokens: int = 1024,
                 output_mode: OutputMode = "auto",
                 max_text_chars: int | None = None, backoff_base_s: float = 1.0,
                 backoff_max_s: float = 60.0, http_client: Any = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep):
        import openai

        if concurrency < 1 or max_retries < 0 or max_tokens < 1 or timeout_s <= 0:
            raise ValueError("concurrency >= 1, max_retries >= 0, max_tokens >= 1, timeout_s > 0")
        self.model = model
        self.base_url = base_url
        self.concurrency = concurrency
        self.stats = ClientStats()
        self.cache = cache
        self.max_retries = max_retries
        self.max_invalid_retries = max_retries if max_invalid_retries is None else max_invalid_retries
        self.max_tokens = max_tokens
        self.max_text_chars = max_text_chars
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.adaptive = output_mode == "auto"
        self.mode: str = "json_schema" if output_mode == "auto" else output_mode
        self._sleep = sleep
        self._sem = asyncio.Semaphore(concurrency)
        # a server may quote the key back (in an error, even in a reply): never let it reach a file
        self._secret = api_key if len(api_key) >= 8 else None
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                                          timeout=timeout_s,
                                          http_client=(http_client if http_client is not None
                                                       else default_http_client()))

    # ------------------------------------------------------------------ public
    def params(self) -> dict[str, object]:
        """The sampling parameters that, with model, messages and schema, key the cache."""
        return sampling_params(self.max_tokens)

    def cache_key(self, messages: list[dict[str, str]], schema: type[BaseModel]) -> str:
        return judge_request_key(self.model, messages, schema, max_tokens=self.max_tokens,
                                 max_text_chars=self.max_text_chars)

    def cached(self, messages: list[dict[str, str]], schema: type[BaseModel]) -> JudgeResult | None:
        """The cached verdict for this request, if any (counted as a cache hit); no request."""
        if self.cache is None:
            return None
        hit = self.cache.get(self.cache_key(messages, schema))
        if hit is None:
            return None
        self.stats.cache_hits += 1
        return JudgeResult("ok", schema.model_validate_json(hit.verdict_json), hit.raw, None,
                           Usage(prompt_tokens=hit.prompt_tokens,
                                 completion_tokens=hit.completion_tokens, calls=0),
                           attempts=0, cached=True)

    async def judge(self, messages: list[dict[str, str]], schema: type[BaseModel]) -> JudgeResult:
        json_schema = _strict_json_schema(schema, self.max_text_chars)
        key = request_key(self.model, messages, self.params(), json_schema)
        hit = self.cached(messages, schema)
        if hit is not None:
            return hit
        calls = attempts = invalid = prompt_tokens = completion_tokens = 0
        status: ResultStatus = "api_error"
        raw, error = "", "no request made"
        retryable, retry_after_s = False, None
        while attempts <= self.max_retries:
            mode = self.mode
            out = await self._request(messages, schema, json_schema, mode)
            calls += 1
            prompt_tokens += out.usage[0]
            completion_tokens += out.usage[1]
            if out.kind == "format_rejected" and self.adaptive and mode in _STEP_DOWN:
                if self.mode == mode:
                    self.mode = _STEP_DOWN[mode]
                continue  # not counted: the endpoint told us how to ask
            attempts += 1
            retryable, retry_after_s = out.kind == "transient", out.retry_after_s
            if out.kind in ("fatal", "format_rejected"):
                status, error = "api_error", out.error
                break
            if out.kind == "transient":
                status, error = "api_error", out.error
                if attempts <= self.max_retries:
                    await self._sleep(self._backoff_s(attempts, out.retry_after_s))
                continue
            raw = self._redact(out.text)
            # the prompt: verdict-like text copied from it (an answer's fake "[[10]]") never counts
            verdict, problem = parse_verdict(raw, schema,
                                             prompt="\n".join(m["content"] for m in messages))
            if verdict is not None:
                usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, calls=calls)
                if self.cache is not None:
                    self.cache.put(key, CachedResponse(
                        self.model, schema.__name__, raw, verdict.model_dump_json(), out.usage[0],
                        out.usage[1], mode))
                return JudgeResult("ok", verdict, raw, None, usage, attempts)
            if out.finish_reason == "length":
                problem = f"{problem} (reply cut at {self.max_tokens} tokens)"
            status, error = "invalid_output", problem
            invalid += 1
            if invalid > self.max_invalid_retries:  # at temperature 0 a retry mostly repeats itself
                break
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, calls=calls)
        return JudgeResult(status, None, raw, self._redact(error), usage, attempts,
                           retryable=retryable, retry_after_s=retry_after_s)

    async def check(self) -> None:
        """Fail fast when the endpoint cannot be reached or rejects the key (one request)."""
        import openai

        from judge.errors import JudgeEndpointError, JudgeSpecError

        where = self.base_url or "the OpenAI API"
        try:
            await self._client.models.list()
        except openai.AuthenticationError:
            raise JudgeSpecError(f"{where} rejected the API key (HTTP 401); check OPENAI_API_KEY "
                                 "(or JUDGE_API_KEY)") from None
        except openai.APIConnectionError as err:
            raise JudgeEndpointError(f"judge endpoint {where} cannot be reached ({_one_line(err)}); "
                                     "is the server running? check --judge-base-url") from None
        except openai.APIStatusError:
            return  # some servers do not list models; requests will tell

    async def aclose(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------------ internals
    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "[API key]") if self._secret and text else text

    def _backoff_s(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.backoff_max_s)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _response_format(self, mode: str, schema: type[BaseModel], json_schema: dict[str, Any]
                         ) -> dict[str, Any] | None:
        if mode == "json_schema":
            return {"type": "json_schema",
                    "json_schema": {"name": schema.__name__, "schema": json_schema, "strict": True}}
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    async def _request(self, messages: list[dict[str, str]], schema: type[BaseModel],
                       json_schema: dict[str, Any], mode: str) -> _Outcome:
        import openai
        from openai.types.chat import ChatCompletion

        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, **self.params()}
        fmt = self._response_format(mode, schema, json_schema)
        if fmt is not None:
            kwargs["response_format"] = fmt
        try:
            async with self._sem:
                self.stats.calls += 1
                # the SDK's documented raw POST: same errors and response model as
                # chat.completions.create, without its per-call re-typing of our already-plain body
                resp = await self._client.post("/chat/completions", body=kwargs, cast_to=ChatCompletion)
        except openai.APIConnectionError as err:  # includes APITimeoutError
            kind = "timeout" if isinstance(err, openai.APITimeoutError) else "connection error"
            return _Outcome("transient", error=f"{kind}: {_one_line(err)}")
        except (json.JSONDecodeError, openai.APIResponseValidationError) as err:
            # a 200 whose body is cut or is no chat completion: the server misbehaved, retry
            return _Outcome("transient", error=f"malformed response: {_one_line(err)}")
        except openai.APIStatusError as err:
            code = err.status_code
            message = _one_line(getattr(err, "message", "") or str(err))
            error = f"HTTP {code}: {message}"
            headers = getattr(err.response, "headers", None)
            if code in _RETRY_STATUS or code >= 500:
                return _Outcome("transient", error=error, retry_after_s=_retry_after_s(headers))
            if code in (400, 422) and fmt is not None and any(w in message.lower() for w in _FORMAT_WORDS):
                return _Outcome("format_rejected", error=error)
            return _Outcome("fatal", error=error)
        # the SDK does not validate a 200's body: read it defensively (a list, a string, a choice
        # without a message or a non-string content must not crash the run)
        usage_obj = getattr(resp, "usage", None)
        counts = (getattr(usage_obj, "prompt_tokens", 0), getattr(usage_obj, "completion_tokens", 0))
        usage = (counts[0] if isinstance(counts[0], int) else 0,
                 counts[1] if isinstance(counts[1], int) else 0)
        self.stats.prompt_tokens += usage[0]
        self.stats.completion_tokens += usage[1]
        choices = getattr(resp, "choices", None)
        if not choices or not isinstance(choices, list):
            return _Outcome("reply", text="", usage=usage)
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None) or getattr(message, "refusal", None) or ""
        if not isinstance(text, str):
            return _Outcome("transient", error="malformed response: message content is not text",
                            usage=usage)
        finish = getattr(choices[0], "finish_reason", None)
        return _Outcome("reply", text=text, finish_reason=finish, usage=usage)

