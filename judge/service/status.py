"""A comparison's live status from its run folder: per-stage progress, rate and ETA.

The child writes ``RUN/service/progress.jsonl`` (see `judge.progress`): a ``start`` line when a
stage begins, ``run`` lines as it advances, an ``end`` line when it stops. Per stage label the
latest start counts (a resumed job starts a stage again with only what is left to do): ``done`` /
``total`` from its last line, ``rate`` = done / seconds since that start (items per second), ``eta_s``
= (total - done) / rate. Reads are cached on the file's size and mtime, so many clients polling
cost one parse per change.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from judge.schemas import Record


class StageProgress(Record):
    stage: str
    done: int
    total: int
    state: str  # "running" | "finished" | "stopped" (ended before its total)
    started: float
    updated: float
    rate_per_s: float | None = None
    eta_s: float | None = None
    tokens: int = 0


def stage_rows(lines: list[dict]) -> list[StageProgress]:
    """Fold progress lines into one row per stage label, in the order stages (re)started."""
    rows: dict[str, dict] = {}
    for ln in lines:
        stage = str(ln.get("stage", "?"))
        if ln.get("state") == "start" or stage not in rows:
            rows.pop(stage, None)  # a restart replaces the stage's row and moves it last
            rows[stage] = {"stage": stage, "started": ln["t"], "done": 0, "tokens": 0}
        r = rows[stage]
        r.update(done=int(ln.get("done", 0)), total=int(ln.get("total", 0)), updated=ln["t"],
                 tokens=int(ln.get("tokens", 0)), last=ln.get("state"))
    out: list[StageProgress] = []
    for r in rows.values():
        elapsed = r["updated"] - r["started"]
        rate = r["done"] / elapsed if r["done"] and elapsed > 0 else None
        if r["last"] == "end":
            state = "finished" if r["done"] >= r["total"] else "stopped"
        else:
            state = "running"
        eta = (r["total"] - r["done"]) / rate if rate and state == "running" else None
        out.append(StageProgress(stage=r["stage"], done=r["done"], total=r["total"], state=state,
                                 started=r["started"], updated=r["updated"], tokens=r["tokens"],
                                 rate_per_s=round(rate, 4) if rate else None,
                                 eta_s=round(eta, 1) if eta is not None else None))
    return out


class ProgressReader:
    """Parsed progress files, cached by (size, mtime)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int], list[dict]]] = {}
        self._lock = threading.Lock()

    def lines(self, path: Path) -> list[dict]:
        try:
            st = os.stat(path)
        except OSError:
            return []
        key = (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._cache.get(str(path))
            if hit and hit[0] == key:
                return hit[1]
        raw = Path(path).read_bytes()
        out = []
        for line in raw.split(b"\n")[:-1]:  # a torn last line is skipped
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "t" in obj:
                out.append(obj)
        with self._lock:
            self._cache[str(path)] = (key, out)
        return out
