"""The FastAPI application of `judge serve` and the function that serves it with uvicorn.

`create_app` wires the index, the job runner, the API (`judge.service.api`), the pages
(`judge.service.ui`) and the request checks of `judge.service.security` (a plain ASGI middleware,
so streaming responses pass through untouched). `serve` refuses an unsafe bind, then runs uvicorn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from judge.errors import ConfigError
from judge.service.db import Index
from judge.service.jobs import Runner
from judge.service.security import allowed_hosts_for, check_bind, check_request, server_token
from judge.service.views import Views

DEFAULT_PORT = 8750


@dataclass
class ServiceContext:
    outputs: Path
    index: Index
    runner: Runner
    views: Views
    token: str


class SecurityMiddleware:
    """Refuses requests that `check_request` rejects, before any route runs."""

    def __init__(self, app, allowed_hosts: set[str], token: str):
        self.app, self.allowed_hosts, self.token = app, allowed_hosts, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = check_request(scope["method"], headers, self.allowed_hosts, self.token)
        if refused is None:
            return await self.app(scope, receive, send)
        import json

        status, reason = refused
        body = json.dumps({"detail": reason}).encode()
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "http.response.body", "body": body})


def create_app(outputs: Path, *, token: str, slots: int = 1, bind: str = "127.0.0.1",
               extra_hosts: set[str] | None = None, run_jobs: bool = True):
    """The app; with ``run_jobs=False`` no job runs (tests of the API alone)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from judge.service import api, ui

    outputs = Path(outputs).resolve()
    index = Index(outputs)
    views = Views(index)
    runner = Runner(index, outputs, slots)
    context = ServiceContext(outputs, index, runner, views, token)

    @asynccontextmanager
    async def lifespan(app):
        for row in index.list(limit=10000):
            views.reindex_labels(row)
        if run_jobs:
            runner.start()
        try:
            yield
        finally:
            if run_jobs:
                runner.stop()

    app = FastAPI(title="judge serve", version="1",
                  description="Submit comparisons of a compressed model against its baseline, watch "
                  "them run, browse scorecards and review flagged responses.", lifespan=lifespan)
    app.state.ctx = context

    @app.exception_handler(RequestValidationError)
    async def one_line_422(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return JSONResponse({"detail": f"{loc or 'body'}: {first.get('msg', 'invalid')}"},
                            status_code=422)

    app.include_router(api.router)
    app.include_router(ui.router)
    app.add_middleware(SecurityMiddleware, allowed_hosts=allowed_hosts_for(bind, extra_hosts),
                       token=token)
    return app


def serve(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT, outputs: Path,
          token_file: Path | None = None, slots: int = 1, say=print) -> None:
    """Check the bind, make or read the token, and run the service until interrupted."""
    check_bind(host, token_file)
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise ConfigError("judge serve needs fastapi and uvicorn: pip install 'judge[serve]'") from None
    token = server_token(outputs, token_file)
    app = create_app(outputs, token=token, slots=slots, bind=host)
    shown = f"[{host}]" if ":" in host else host
    say(f"judge serve: http://{shown}:{port}/ (API docs /docs), outputs {Path(outputs).resolve()}, "
        f"{slots} slot(s); writes need the token"
        + ("" if token_file else f" in {Path(outputs) / 'service-token'}"))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
