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
               extra_hosts: set[str] | None = None, run_jobs: bool = True,
               executor: dict | None = None):
    """The app; with ``run_jobs=False`` no job runs (tests of the API alone). ``executor`` (the
    run config's ``executor`` table) replaces every job's own: the server decides where jobs run."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from judge.service import api, ui

    outputs = Path(outputs).resolve()
    index = Index(outputs)
    views = Views(index)
    runner = Runner(index, outputs, slots, executor=executor)
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
          token_file: Path | None = None, slots: int = 1, executor: str = "local",
          ray_address: str | None = None, say=print) -> None:
    """Check the bind, make or read the token, and run the service until interrupted.

    With ``executor="ray"`` every job runs its models on the Ray cluster at ``ray_address``; without
    an address the server starts a local Ray instance for its jobs to share (one set of CPUs and
    GPUs for every slot) and ends it on exit."""
    check_bind(host, token_file)
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise ConfigError("judge serve needs fastapi and uvicorn: pip install 'judge[serve]'") from None
    token = server_token(outputs, token_file)
    job_executor, stop_ray = None, None
    if executor == "ray":
        job_executor, stop_ray = ray_for_jobs(ray_address, Path(outputs))
    elif ray_address:
        raise ConfigError("--ray-address needs --executor ray")
    try:
        app = create_app(outputs, token=token, slots=slots, bind=host, executor=job_executor)
        shown = f"[{host}]" if ":" in host else host
        where = f"; jobs on Ray at {job_executor['ray_address']}" if job_executor else ""
        say(f"judge serve: http://{shown}:{port}/ (API docs /docs), outputs "
            f"{Path(outputs).resolve()}, {slots} slot(s){where}; writes need the token"
            + ("" if token_file else f" in {Path(outputs) / 'service-token'}"))
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        if stop_ray is not None:
            stop_ray()


def ray_for_jobs(address: str | None, outputs: Path) -> tuple[dict, object]:
    """The executor table every job gets, and what ends the local Ray instance (None: not ours)."""
    from judge.executors import RaySettings, make_executor

    ex = make_executor("ray", RaySettings(address=address))
    if address:
        ex.check_address()  # type: ignore[attr-defined]
        return {"kind": "ray", "ray_address": address}, None
    from judge.logs import engine_output

    with engine_output(Path(outputs) / "logs", "ray-serve"):  # Ray's start-up lines
        ex.connect()  # type: ignore[attr-defined]
    import ray

    return {"kind": "ray", "ray_address": ray.get_runtime_context().gcs_address}, ex.close
