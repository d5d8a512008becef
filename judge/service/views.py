"""What the API and the pages show, read from the run folders: comparison records, scorecards,
flagged items, the gate, labels and the leaderboard.

Files are parsed once per change (cached on size and mtime). Labels are appended to
``RUN/labels.jsonl`` (the source of truth; the newest label per item and reviewer wins) and
mirrored into the index.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from pathlib import Path

from pydantic import Field

from judge.schemas import Record
from judge.scorecard import FlaggedItem, HumanLabel, human_agreement, item_key
from judge.service.db import ComparisonRow, Index
from judge.service.jobs import log_path, progress_path
from judge.service.status import ProgressReader, StageProgress, stage_rows
from judge.store import append_jsonl, iter_jsonl_raw

LABELS_FILE = "labels.jsonl"
REVIEWER_RE = r"^[A-Za-z0-9][A-Za-z0-9_.@ -]{0,63}$"


def clean(value: object) -> object:
    """NaN and infinities become None, so every response is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


class LabelIn(Record):
    """The body of ``POST /v1/comparisons/{id}/labels``."""

    item: str = Field(pattern=r"^[^/]{1,128}/[^/]{1,128}/[0-9]{1,3}$",
                      description="ROLE/QUESTION_ID/TURN of a flagged item")
    label: HumanLabel
    comment: str = Field(default="", max_length=4000)
    reviewer: str = Field(default="reviewer", pattern=REVIEWER_RE)


class LabelRow(LabelIn):
    t: float


class ComparisonView(Record):
    id: str
    status: str
    run: str
    baseline: str
    candidates: list[str]
    created: float
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    error: str | None = None
    queue_position: int | None = None
    attempts: int = 0


class StatusView(Record):
    id: str
    status: str
    stages: list[StageProgress]
    exit_code: int | None = None
    error: str | None = None
    queue_position: int | None = None
    updated: float | None = None


class Views:
    """Reads for one outputs folder, with file caches shared across requests."""

    def __init__(self, index: Index):
        self.index = index
        self.progress = ProgressReader()
        self._files: dict[str, tuple[tuple[int, int], object]] = {}
        self._lock = threading.Lock()

    def _cached(self, path: Path, parse):
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._files.get(str(path))
            if hit and hit[0] == key:
                return hit[1]
        value = parse(path)
        with self._lock:
            self._files[str(path)] = (key, value)
        return value

    # comparisons ------------------------------------------------------------------
    def queue_position(self, row: ComparisonRow) -> int | None:
        if row.status != "queued":
            return None
        return 1 + next((i for i, r in enumerate(self.index.queued()) if r.id == row.id), 0)

    def comparison(self, row: ComparisonRow) -> ComparisonView:
        return ComparisonView(id=row.id, status=row.status, run=Path(row.run_dir).name,
                              baseline=row.baseline, candidates=row.candidates, created=row.created,
                              started=row.started, finished=row.finished, exit_code=row.exit_code,
                              error=row.error, queue_position=self.queue_position(row),
                              attempts=len(self.index.jobs(row.id)))

    def status(self, row: ComparisonRow) -> StatusView:
        lines = self.progress.lines(progress_path(Path(row.run_dir)))
        return StatusView(id=row.id, status=row.status, stages=stage_rows(lines),
                          exit_code=row.exit_code, error=row.error,
                          queue_position=self.queue_position(row),
                          updated=lines[-1]["t"] if lines else None)

    def progress_lines(self, row: ComparisonRow) -> list[dict]:
        return self.progress.lines(progress_path(Path(row.run_dir)))

    def log_tail(self, row: ComparisonRow, max_bytes: int = 20000) -> str:
        path = log_path(Path(row.run_dir))
        if not path.is_file():
            return ""
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")

    # results ----------------------------------------------------------------------
    def scorecard(self, row: ComparisonRow) -> dict | None:
        return self._cached(Path(row.run_dir) / "scorecard.json",
                            lambda p: clean(json.loads(p.read_text(encoding="utf-8"))))

    def gate(self, row: ComparisonRow) -> dict | None:
        return self._cached(Path(row.run_dir) / "gate.json",
                            lambda p: clean(json.loads(p.read_text(encoding="utf-8"))))

    def flagged(self, row: ComparisonRow) -> list[FlaggedItem] | None:
        def parse(p: Path) -> list[FlaggedItem]:
            return [FlaggedItem.model_validate(obj) for _, obj in iter_jsonl_raw(p)]

        return self._cached(Path(row.run_dir) / "flagged.jsonl", parse)

    def scorecard_with_labels(self, row: ComparisonRow) -> dict | None:
        card = self.scorecard(row)
        if card is None:
            return None
        items = self.flagged(row) or []
        labels = [(r["item"], r["label"], r["t"]) for r in self.index.labels(row.id)]
        return {**card, "human_agreement": human_agreement(items, labels).model_dump()}

    # labels -----------------------------------------------------------------------
    def add_label(self, row: ComparisonRow, label: LabelIn) -> LabelRow:
        rec = LabelRow(**label.model_dump(), t=time.time())
        append_jsonl(Path(row.run_dir) / LABELS_FILE, [rec])
        self.index.put_label(row.id, rec.item, rec.reviewer, rec.label, rec.comment, rec.t)
        return rec

    def reindex_labels(self, row: ComparisonRow) -> int:
        """Mirror ``RUN/labels.jsonl`` into the index (after a restart or a copied run folder)."""
        path = Path(row.run_dir) / LABELS_FILE
        if not path.is_file():
            return 0
        n = 0
        for _, obj in iter_jsonl_raw(path):
            try:
                rec = LabelRow.model_validate(obj)
            except ValueError:
                continue
            self.index.put_label(row.id, rec.item, rec.reviewer, rec.label, rec.comment, rec.t)
            n += 1
        return n

    def labels_export(self, row: ComparisonRow) -> str:
        path = Path(row.run_dir) / LABELS_FILE
        return path.read_text(encoding="utf-8") if path.is_file() else ""

    # leaderboard ------------------------------------------------------------------
    def leaderboard(self) -> list[dict]:
        """Per baseline, the candidates of completed comparisons ranked by grade delta, then win rate."""
        groups: dict[str, list[dict]] = {}
        for row in self.index.list(status="completed", limit=500):
            card = self.scorecard(row)
            if not card:
                continue
            gate = self.gate(row) or {}
            outcomes: dict[str, str] = {}
            for res in gate.get("results", []):
                prev = outcomes.get(res["role"])
                order = ["pass", "inconclusive", "fail"]
                if prev is None or order.index(res["outcome"]) > order.index(prev):
                    outcomes[res["role"]] = res["outcome"]
            base = card.get("baseline_model") or row.baseline
            for sec in card.get("sections", []):
                beh = sec.get("behaviour") or {}
                grade = (sec.get("grades") or [{}])[0]
                h2h = sec.get("head_to_head") or {}
                flips = sec.get("flips") or {}
                div = (sec.get("divergence") or [{}])[0]
                n_ans = beh.get("n_answers") or 0
                groups.setdefault(base, []).append({
                    "comparison": row.id, "run": Path(row.run_dir).name, "role": sec["role"],
                    "model": sec.get("model") or sec["role"], "finished": row.finished,
                    "grade_delta": grade.get("delta") if grade.get("n") else None,
                    "win_rate": h2h.get("win_rate"),
                    "kl_mean": div.get("kl_mean"),
                    "identical_share": (beh.get("n_identical", 0) / n_ans) if n_ans else None,
                    "flip_percent": flips.get("flip_percent") if flips else None,
                    "behaviour": beh.get("status"), "quality": (sec.get("quality") or {}).get("status"),
                    "gate": outcomes.get(sec["role"]),
                })
        out = []
        for base, rows in sorted(groups.items()):
            def rank(r: dict) -> tuple:
                d = (r["grade_delta"] or {}).get("estimate")
                w = (r["win_rate"] or {}).get("estimate")
                return (d is None, -(d or 0.0), w is None, -(w or 0.0), r["kl_mean"] or 0.0)
            out.append({"baseline": base, "candidates": sorted(rows, key=rank)})
        return out


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:80]


def item_of(items: list[FlaggedItem], key: str) -> FlaggedItem | None:
    return next((i for i in items if item_key(i.role, i.question_id, i.turn) == key), None)
