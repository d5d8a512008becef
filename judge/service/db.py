"""The service's index: one SQLite database (WAL) in the outputs folder.

Tables: ``comparisons`` (one per submitted run config: its run folder, status, exit code, error
line), ``jobs`` (one row per launch of a comparison's child process: a resumed comparison has
several) and ``labels`` (the last human label per item and reviewer, mirrored from each run
folder's ``labels.jsonl``). The run folders stay the source of truth; this index can be rebuilt
from them for labels, and holds the queue for comparisons.

Each call opens its own short connection (``check_same_thread`` is never shared), so request
handlers and the job runner's thread never contend for one handle; WAL lets readers run while
the runner writes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from judge.schemas import Record

DB_NAME = "service.sqlite"
Status = str  # "queued" | "running" | "completed" | "failed" | "cancelled"
ACTIVE = ("queued", "running")

SCHEMA = """
CREATE TABLE IF NOT EXISTS comparisons (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT UNIQUE NOT NULL,
  created REAL NOT NULL,
  run_dir TEXT NOT NULL,
  baseline TEXT NOT NULL,
  candidates TEXT NOT NULL,
  config TEXT NOT NULL,
  key_env TEXT,
  status TEXT NOT NULL,
  started REAL,
  finished REAL,
  exit_code INTEGER,
  error TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS comparisons_status ON comparisons(status, seq);
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  comparison_id TEXT NOT NULL REFERENCES comparisons(id),
  pid INTEGER,
  started REAL NOT NULL,
  finished REAL,
  exit_code INTEGER
);
CREATE TABLE IF NOT EXISTS labels (
  comparison_id TEXT NOT NULL,
  item TEXT NOT NULL,
  reviewer TEXT NOT NULL,
  label TEXT NOT NULL,
  comment TEXT NOT NULL,
  t REAL NOT NULL,
  PRIMARY KEY (comparison_id, item, reviewer)
);
"""


class ComparisonRow(Record):
    """One comparison as the index holds it."""

    seq: int
    id: str
    created: float
    run_dir: str
    baseline: str
    candidates: list[str]
    config: dict
    key_env: str | None = None
    status: Status
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    error: str | None = None
    cancel_requested: bool = False
    version: int = 0


class Index:
    """Open (creating) ``OUTPUTS/service.sqlite``."""

    def __init__(self, outputs: Path):
        self.path = Path(outputs) / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield db
        finally:
            db.close()

    # comparisons -------------------------------------------------------------------
    def add(self, cid: str, run_dir: str, baseline: str, candidates: list[str], config: dict,
            key_env: str | None) -> ComparisonRow:
        with self.connect() as db:
            db.execute("INSERT INTO comparisons (id, created, run_dir, baseline, candidates, config, "
                       "key_env, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued')",
                       (cid, time.time(), run_dir, baseline, json.dumps(candidates),
                        json.dumps(config), key_env))
        row = self.get(cid)
        assert row is not None
        return row

    def add_if_free(self, cid: str, run_dir: str, baseline: str, candidates: list[str],
                    config: dict, key_env: str | None) -> ComparisonRow | None:
        """Insert unless an active comparison already owns ``run_dir`` (None then); atomic."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            busy = db.execute("SELECT 1 FROM comparisons WHERE run_dir = ? AND status IN "
                              "('queued', 'running')", (run_dir,)).fetchone()
            if busy:
                db.execute("ROLLBACK")
                return None
            db.execute("INSERT INTO comparisons (id, created, run_dir, baseline, candidates, config, "
                       "key_env, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued')",
                       (cid, time.time(), run_dir, baseline, json.dumps(candidates),
                        json.dumps(config), key_env))
            db.execute("COMMIT")
        return self.get(cid)

    @staticmethod
    def _row(r: sqlite3.Row) -> ComparisonRow:
        d = dict(r)
        d["candidates"] = json.loads(d["candidates"])
        d["config"] = json.loads(d["config"])
        d["cancel_requested"] = bool(d["cancel_requested"])
        return ComparisonRow.model_validate(d)

    def get(self, cid: str) -> ComparisonRow | None:
        with self.connect() as db:
            r = db.execute("SELECT * FROM comparisons WHERE id = ?", (cid,)).fetchone()
        return self._row(r) if r else None

    def list(self, *, before_seq: int | None = None, limit: int = 50, status: str | None = None,
             baseline: str | None = None) -> list[ComparisonRow]:
        """Newest first; ``before_seq`` is the cursor (the last row's seq of the previous page)."""
        where, args = [], []
        if before_seq is not None:
            where.append("seq < ?")
            args.append(before_seq)
        if status:
            where.append("status = ?")
            args.append(status)
        if baseline:
            where.append("baseline = ?")
            args.append(baseline)
        sql = "SELECT * FROM comparisons" + (" WHERE " + " AND ".join(where) if where else "")
        with self.connect() as db:
            rows = db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [self._row(r) for r in rows]

    def queued(self) -> list[ComparisonRow]:
        """The queue, oldest first (the order comparisons were submitted in)."""
        with self.connect() as db:
            rows = db.execute("SELECT * FROM comparisons WHERE status = 'queued' ORDER BY seq").fetchall()
        return [self._row(r) for r in rows]

    def running(self) -> list[ComparisonRow]:
        with self.connect() as db:
            rows = db.execute("SELECT * FROM comparisons WHERE status = 'running' ORDER BY seq").fetchall()
        return [self._row(r) for r in rows]

    def update(self, cid: str, **fields: object) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.connect() as db:
            db.execute(f"UPDATE comparisons SET {cols}, version = version + 1 WHERE id = ?",
                       (*fields.values(), cid))

    def claim(self, cid: str) -> bool:
        """queued -> running, atomically; False when it was no longer queued (cancelled)."""
        with self.connect() as db:
            cur = db.execute("UPDATE comparisons SET status = 'running', started = COALESCE(started, ?), "
                             "version = version + 1 WHERE id = ? AND status = 'queued'",
                             (time.time(), cid))
            return cur.rowcount == 1

    # jobs --------------------------------------------------------------------------
    def job_started(self, cid: str, pid: int) -> int:
        with self.connect() as db:
            cur = db.execute("INSERT INTO jobs (comparison_id, pid, started) VALUES (?, ?, ?)",
                             (cid, pid, time.time()))
            return int(cur.lastrowid or 0)

    def job_finished(self, job_id: int, exit_code: int | None) -> None:
        with self.connect() as db:
            db.execute("UPDATE jobs SET finished = ?, exit_code = ? WHERE id = ?",
                       (time.time(), exit_code, job_id))

    def jobs(self, cid: str) -> list[dict]:
        with self.connect() as db:
            return [dict(r) for r in db.execute(
                "SELECT * FROM jobs WHERE comparison_id = ? ORDER BY id", (cid,)).fetchall()]

    def open_job(self, cid: str) -> dict | None:
        """The last launch of ``cid`` that has no recorded end (its pid may still be alive)."""
        with self.connect() as db:
            r = db.execute("SELECT * FROM jobs WHERE comparison_id = ? AND finished IS NULL "
                           "ORDER BY id DESC LIMIT 1", (cid,)).fetchone()
        return dict(r) if r else None

    # labels ------------------------------------------------------------------------
    def put_label(self, cid: str, item: str, reviewer: str, label: str, comment: str, t: float) -> None:
        """Keep the newest label per (item, reviewer)."""
        with self.connect() as db:
            db.execute("INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (comparison_id, item, "
                       "reviewer) DO UPDATE SET label = excluded.label, comment = excluded.comment, "
                       "t = excluded.t WHERE excluded.t >= labels.t",
                       (cid, item, reviewer, label, comment, t))

    def labels(self, cid: str) -> list[dict]:
        with self.connect() as db:
            return [dict(r) for r in db.execute(
                "SELECT item, reviewer, label, comment, t FROM labels WHERE comparison_id = ? "
                "ORDER BY item, reviewer", (cid,)).fetchall()]

    def has_labels(self, cid: str) -> bool:
        with self.connect() as db:
            return db.execute("SELECT 1 FROM labels WHERE comparison_id = ? LIMIT 1",
                              (cid,)).fetchone() is not None
