"""The REST API under ``/v1``: comparisons (create, list, get, cancel), their status, progress as
Server-Sent Events, scorecard, flagged items, one item side by side, gate, labels, the leaderboard.

JSON throughout; lists page with an opaque ``cursor`` (``next_cursor`` in each page); GETs carry an
ETag and answer 304 to a matching ``If-None-Match``. Errors are ``{"detail": "one line"}``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from judge.scorecard import item_key
from judge.service.db import ComparisonRow
from judge.service.spec import ComparisonSpec, SpecError, check_spec
from judge.service.views import LabelIn, clean, item_of

router = APIRouter(prefix="/v1")
TERMINAL = ("completed", "failed", "cancelled")
SSE_POLL_S = 0.25


def ctx(request: Request):
    return request.app.state.ctx


def etag_json(request: Request, data: object, status_code: int = 200) -> Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    tag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag})
    return Response(body, status_code=status_code, media_type="application/json",
                    headers={"ETag": tag, "Cache-Control": "no-cache"})


def _row(request: Request, cid: str) -> ComparisonRow:
    row = ctx(request).index.get(cid)
    if row is None:
        raise HTTPException(404, f"no comparison {cid!r}")
    return row


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("s"):
            raise ValueError
        return int(text[1:])
    except ValueError:
        raise HTTPException(422, "cursor: not a cursor returned by this server") from None


# --------------------------------------------------------------------------- comparisons


@router.post("/comparisons", status_code=201, summary="Submit a comparison (a run config)")
def create_comparison(spec: ComparisonSpec, request: Request) -> JSONResponse:
    c = ctx(request)
    cid = secrets.token_hex(6)
    try:
        cfg, run_dir = check_spec(spec, c.outputs, cid)
    except SpecError as err:
        raise HTTPException(422, str(err)) from None
    row = c.index.add_if_free(cid, str(run_dir), cfg.baseline.spec, [e.spec for e in cfg.compressed],
                              cfg.model_dump(mode="json"), spec.key_env)
    if row is None:
        raise HTTPException(409, f"config.run: run folder {run_dir.name!r} belongs to a comparison "
                                 "that is still queued or running")
    c.runner.wake()
    return JSONResponse(c.views.comparison(row).model_dump(), status_code=201,
                        headers={"Location": f"/v1/comparisons/{cid}"})


@router.get("/comparisons", summary="List comparisons, newest first")
def list_comparisons(request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                     cursor: str | None = None, status: str | None = None,
                     baseline: str | None = None) -> Response:
    c = ctx(request)
    rows = c.index.list(before_seq=_uncursor(cursor) if cursor else None, limit=limit + 1,
                        status=status, baseline=baseline)
    page = rows[:limit]
    nxt = _cursor(page[-1].seq) if len(rows) > limit else None
    return etag_json(request, {"items": [c.views.comparison(r).model_dump() for r in page],
                               "next_cursor": nxt})


@router.get("/comparisons/{cid}", summary="One comparison")
def get_comparison(cid: str, request: Request) -> Response:
    return etag_json(request, ctx(request).views.comparison(_row(request, cid)).model_dump())


@router.post("/comparisons/{cid}/cancel", summary="Cancel a queued or running comparison")
def cancel_comparison(cid: str, request: Request) -> JSONResponse:
    c = ctx(request)
    _row(request, cid)
    row = c.runner.cancel(cid)
    return JSONResponse(c.views.comparison(row).model_dump())


@router.get("/comparisons/{cid}/status", summary="Status with per-stage progress, rate and ETA")
def get_status(cid: str, request: Request) -> Response:
    return etag_json(request, ctx(request).views.status(_row(request, cid)).model_dump())


@router.get("/comparisons/{cid}/log", summary="The tail of the job's log", response_class=PlainTextResponse)
def get_log(cid: str, request: Request) -> PlainTextResponse:
    return PlainTextResponse(ctx(request).views.log_tail(_row(request, cid)))


def _sse(event: str, data: object, eid: int | None = None) -> str:
    head = f"id: {eid}\n" if eid is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/comparisons/{cid}/events", summary="Progress as Server-Sent Events",
            description="Event `progress` per line of the job's progress file (id = its line number; "
            "`Last-Event-ID` resumes after it), `status` when the status changes, `end` when the "
            "comparison is completed, failed or cancelled.")
async def events(cid: str, request: Request) -> StreamingResponse:
    c = ctx(request)
    _row(request, cid)
    try:
        last = int(request.headers.get("last-event-id") or request.query_params.get("last_event_id") or 0)
    except ValueError:
        raise HTTPException(422, "Last-Event-ID: not a number") from None

    async def stream():
        sent, version = last, None
        yield "retry: 1000\n\n"
        while True:
            row = c.index.get(cid)
            if row is None:
                return
            lines = c.views.progress_lines(row)
            fresh = len(lines) > sent
            for i in range(sent, len(lines)):
                yield _sse("progress", lines[i], i + 1)
            sent = max(sent, len(lines))
            if row.version != version or fresh:
                version = row.version
                yield _sse("status", c.views.status(row).model_dump(), sent)
            if row.status in TERMINAL:
                yield _sse("end", {"status": row.status, "exit_code": row.exit_code,
                                   "error": row.error}, sent)
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(SSE_POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --------------------------------------------------------------------------- results


def _need(value, what: str, row: ComparisonRow):
    if value is None:
        raise HTTPException(404, f"comparison {row.id} has no {what} yet (status {row.status})")
    return value


@router.get("/comparisons/{cid}/scorecard", summary="The scorecard JSON, with judge–human agreement")
def get_scorecard(cid: str, request: Request) -> Response:
    row = _row(request, cid)
    return etag_json(request, _need(ctx(request).views.scorecard_with_labels(row), "scorecard", row))


@router.get("/comparisons/{cid}/gate", summary="The gate's result (gate.json)")
def get_gate(cid: str, request: Request) -> Response:
    row = _row(request, cid)
    return etag_json(request, _need(ctx(request).views.gate(row), "gate result", row))


@router.get("/comparisons/{cid}/flagged", summary="Flagged items (without token KL), filtered")
def get_flagged(cid: str, request: Request, role: str | None = None, category: str | None = None,
                turn: int | None = None, reason: str | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                cursor: Annotated[int, Query(ge=0)] = 0) -> Response:
    row = _row(request, cid)
    items = _need(ctx(request).views.flagged(row), "flagged items", row)
    keep = [i for i in items if (role is None or i.role == role)
            and (category is None or i.category == category) and (turn is None or i.turn == turn)
            and (reason is None or reason in i.reasons or reason in i.compressed_issues)]
    page = keep[cursor:cursor + limit]
    out = [clean({**i.model_dump(exclude={"tokens"}), "item": item_key(i.role, i.question_id, i.turn)})
           for i in page]
    nxt = cursor + limit if cursor + limit < len(keep) else None
    return etag_json(request, {"items": out, "total": len(keep), "next_cursor": nxt})


@router.get("/comparisons/{cid}/items/{role}/{question_id}/{turn}",
            summary="One item side by side, the baseline's tokens with their KL")
def get_item(cid: str, role: str, question_id: str, turn: int, request: Request) -> Response:
    row = _row(request, cid)
    items = _need(ctx(request).views.flagged(row), "flagged items", row)
    key = item_key(role, question_id, turn)
    item = item_of(items, key)
    if item is None:
        raise HTTPException(404, f"item {key} is not among the flagged items")
    from judge.report import kl_colour

    data = clean({**item.model_dump(), "item": key})
    for tok, span in zip(data.get("tokens") or [], item.tokens or []):
        tok["bg"] = kl_colour(span.kl)
    return etag_json(request, data)


# --------------------------------------------------------------------------- labels


@router.post("/comparisons/{cid}/labels", status_code=201, summary="Label a flagged item")
def add_label(cid: str, label: LabelIn, request: Request) -> JSONResponse:
    c = ctx(request)
    row = _row(request, cid)
    items = c.views.flagged(row) or []
    if item_of(items, label.item) is None:
        raise HTTPException(422, f"item: {label.item!r} is not a flagged item of this comparison")
    return JSONResponse(c.views.add_label(row, label).model_dump(), status_code=201)


@router.get("/comparisons/{cid}/labels", summary="The last label per item and reviewer")
def get_labels(cid: str, request: Request) -> Response:
    c = ctx(request)
    row = _row(request, cid)
    return etag_json(request, {"items": c.index.labels(row.id)})


@router.get("/comparisons/{cid}/labels.jsonl", summary="Export every label (append-only JSONL)",
            response_class=PlainTextResponse)
def export_labels(cid: str, request: Request) -> PlainTextResponse:
    row = _row(request, cid)
    return PlainTextResponse(ctx(request).views.labels_export(row), media_type="application/x-ndjson",
                             headers={"Content-Disposition": f'attachment; filename="labels-{cid}.jsonl"'})


@router.get("/leaderboard", summary="Candidates per baseline, ranked by quality")
def leaderboard(request: Request) -> Response:
    return etag_json(request, {"baselines": ctx(request).views.leaderboard()})
