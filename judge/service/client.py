"""The HTTP client of `judge submit`, `judge status` and `judge watch`.

Writes carry the bearer token and the ``X-Judge-Client`` header. `events` follows the SSE stream
and reconnects with ``Last-Event-ID`` when the connection drops (a server restart), so a watcher
sees every progress line once. Server errors become `ServiceError` with the server's one line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from judge.errors import JudgeError

DEFAULT_URL = "http://127.0.0.1:8750"


class ServiceError(JudgeError):
    """The service refused a request or cannot be reached."""


class ServiceClient:
    def __init__(self, base_url: str = DEFAULT_URL, token: str | None = None, timeout_s: float = 30.0):
        import httpx

        self.base_url = base_url.rstrip("/")
        headers = {"X-Judge-Client": "judge-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kw) -> dict:
        import httpx

        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as err:
            raise ServiceError(f"cannot reach the judge service at {self.base_url} ({err}); "
                               "start it with `judge serve` or pass --server") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text[:300]
            raise ServiceError(f"{method} {path}: HTTP {r.status_code}: {detail}")
        return r.json()

    def submit(self, config: dict, key_env: str | None = None) -> dict:
        return self._call("POST", "/v1/comparisons", json={"config": config, "key_env": key_env})

    def get(self, cid: str) -> dict:
        return self._call("GET", f"/v1/comparisons/{cid}")

    def status(self, cid: str) -> dict:
        return self._call("GET", f"/v1/comparisons/{cid}/status")

    def cancel(self, cid: str) -> dict:
        return self._call("POST", f"/v1/comparisons/{cid}/cancel")

    def events(self, cid: str, *, retry_for_s: float = 60.0) -> Iterator[tuple[str, dict]]:
        """``(event, data)`` until the ``end`` event; reconnects with Last-Event-ID."""
        import httpx

        last, lost_since = "0", None
        while True:
            try:
                with self.http.stream("GET", f"/v1/comparisons/{cid}/events",
                                      headers={"Last-Event-ID": last},
                                      timeout=httpx.Timeout(30.0, read=None)) as r:
                    if r.status_code >= 400:
                        r.read()
                        raise ServiceError(f"events of {cid}: HTTP {r.status_code}: {r.text[:300]}")
                    lost_since = None
                    event, data, eid = "message", [], None
                    for line in r.iter_lines():
                        if line == "":
                            if data:
                                if eid is not None:
                                    last = eid
                                payload = json.loads("\n".join(data))
                                yield event, payload
                                if event == "end":
                                    return
                            event, data, eid = "message", [], None
                        elif line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:"):
                            data.append(line[5:].strip())
                        elif line.startswith("id:"):
                            eid = line[3:].strip()
            except (httpx.TransportError, httpx.RemoteProtocolError):
                lost_since = lost_since or time.time()
                if time.time() - lost_since > retry_for_s:
                    raise ServiceError(f"lost the judge service at {self.base_url} for "
                                       f"{retry_for_s:.0f} s") from None
                time.sleep(1.0)
