"""Checks of a remote judge endpoint before anything is written or started: the URL, the key, and
one cheap request (``GET {base_url}/models`` with the key).

`check_base_url` and `check_api_key` are pure (no network); `reach` sends the one request and maps
every way it can fail (nothing listening, a timeout, a rejected key, a web page instead of the
API) to one `JudgeError` line; `reach_all` does it for every endpoint of a judge fleet. The key is
never part of a message.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

from judge.errors import JudgeEndpointError, JudgeError, JudgeSpecError

PROBE_TIMEOUT_S = 20.0  # the probe waits at most this long (or the request timeout, if shorter)


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash, or a `JudgeSpecError` saying what is wrong with it."""
    if any(not ch.isprintable() or ch.isspace() for ch in url):
        raise JudgeSpecError("--judge-base-url holds a space or control character; give a URL "
                             "such as http://127.0.0.1:8000/v1")
    if not url.startswith(("http://", "https://")):
        raise JudgeSpecError(f"--judge-base-url {url!r} must start with http:// or https://")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # raises ValueError for a port that is no number or out of range
        host = parts.hostname
    except ValueError as err:
        raise JudgeSpecError(f"--judge-base-url {url!r} is not a valid URL ({err}); an IPv6 host "
                             "goes in brackets: http://[::1]:8000/v1") from None
    if parts.username is not None or parts.password is not None:
        raise JudgeSpecError("--judge-base-url holds credentials (user:key@host), which would be "
                             "recorded in the run's manifest; give the key in JUDGE_API_KEY and "
                             "drop it from the URL")
    if not host:
        raise JudgeSpecError(f"--judge-base-url {url!r} has no host; e.g. http://127.0.0.1:8000/v1")
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise JudgeSpecError(f"--judge-base-url {url!r}: {host!r} in brackets is not an IPv6 "
                                 "address") from None
    if parts.query or parts.fragment:
        raise JudgeSpecError(f"--judge-base-url {url!r} has a query or fragment; give the API's "
                             "base, e.g. http://127.0.0.1:8000/v1")
    del port
    return url.rstrip("/")


def check_api_key(key: str, variable: str) -> None:
    """A key that cannot go into an HTTP header is refused (without showing it)."""
    if key != key.strip():
        raise JudgeSpecError(f"the API key in {variable} starts or ends with whitespace or a "
                             "newline; set it without them")
    for i, ch in enumerate(key):
        if not ch.isascii() or not ch.isprintable():
            what = "a non-ASCII character" if not ch.isascii() else "a control character"
            raise JudgeSpecError(f"the API key in {variable} holds {what} at position {i + 1}; an "
                                 "HTTP header cannot carry it: copy the key again")


def check_timeout(timeout_s: float | None) -> None:
    if timeout_s is not None and (not math.isfinite(timeout_s) or timeout_s <= 0):
        raise JudgeSpecError(f"--timeout-s {timeout_s}: give a finite number of seconds above 0")


def reach(base_url: str | None, api_key: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """One ``GET /models`` with the key; returns when the endpoint looks like the OpenAI API."""
    base = base_url or "https://api.openai.com/v1"
    where = base_url or "the OpenAI API"
    request = urllib.request.Request(f"{base}/models", headers={
        "Authorization": f"Bearer {api_key}", "Accept": "application/json"})
    limit = min(timeout_s, PROBE_TIMEOUT_S)
    try:
        with urllib.request.urlopen(request, timeout=limit) as response:  # noqa: S310 - http(s) only
            status, ctype, body = response.status, response.headers.get("Content-Type", ""), response.read(65536)
    except urllib.error.HTTPError as err:
        status, ctype = err.code, err.headers.get("Content-Type", "") if err.headers else ""
        body = err.read(65536) if hasattr(err, "read") else b""
    except (TimeoutError, socket.timeout):
        raise JudgeEndpointError(f"judge endpoint {where} did not answer GET /models within "
                                 f"{limit:g} s; is the server up? check --judge-base-url") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as err:
        # nothing listening, TLS to a plain server, a server that speaks no HTTP (BadStatusLine)
        reason = getattr(err, "reason", err)
        text = " ".join(str(reason).split())[:200]
        raise JudgeEndpointError(f"judge endpoint {where} cannot be reached ({text}); is the server "
                                 "running? check --judge-base-url") from None
    if status in (401, 403):
        raise JudgeSpecError(f"{where} rejected the API key (HTTP {status}); check JUDGE_API_KEY "
                             "(or OPENAI_API_KEY)")
    if "html" in ctype.lower() or body.lstrip()[:1] == b"<":
        raise JudgeEndpointError(f"{where} answers GET /models (HTTP {status}) with a web page, not "
                                 "the OpenAI API; check --judge-base-url (it usually ends in /v1)")
    if status >= 500:
        return  # a server error now may pass; the requests are retried and recorded
    if status == 200:
        try:
            json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise JudgeEndpointError(f"{where} answers GET /models with something that is not "
                                     "JSON; check --judge-base-url (it usually ends in /v1)") from None


def reach_all(base_urls: Sequence[str | None], api_key: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """`reach` every endpoint of a judge fleet before any work starts. An endpoint that does not
    answer is refused (the user named it), in one line naming it."""
    for url in base_urls:
        try:
            reach(url, api_key, timeout_s=timeout_s)
        except JudgeError as err:
            if len(base_urls) < 2:
                raise
            raise type(err)(f"{err.message}; every --judge-base-url of a fleet must answer before "
                            "work starts: drop this one to judge with the others") from None
