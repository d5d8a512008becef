"""The judge response cache: one SQLite row per request hash, so a rerun makes no repeated calls.

The key is the sha256 of the canonical JSON of (judge model, messages, sampling parameters, verdict
JSON schema). The endpoint URL is not part of it (a local judge gets a new port every time) and
neither is the output mode (json_schema / json_object / text): they change how a verdict is asked
for, not what is asked. Only a complete response whose verdict validated is stored, in one
transaction, so the cache never holds a failure or a half-written entry. WAL mode lets a reader
(``judge review``) look while grading writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from judge.errors import JudgeError

OPEN_TIMEOUT_S = 5.0  # how long opening waits for another process's write lock
BUSY_TIMEOUT_S = 30.0  # then: how long a write waits for a concurrent reader/writer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    raw TEXT NOT NULL,
    verdict_json TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    output_mode TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def request_key(model: str, messages: list[dict[str, str]], params: dict[str, object],
                schema: dict[str, object]) -> str:
    """sha256 of the canonical JSON of everything that determines the judge's answer."""
    payload = {"model": model, "messages": messages, "params": params, "schema": schema}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedResponse:
    model: str
    schema_name: str
    raw: str  # the judge's text
    verdict_json: str  # the validated verdict
    prompt_tokens: int
    completion_tokens: int
    output_mode: str


class JudgeCache:
    """A small key -> response store; safe to call from one event loop (or several threads)."""

    def __init__(self, path: Path, *, open_timeout_s: float | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        sidecars = [p for p in (self.path.with_name(self.path.name + "-wal"),
                                self.path.with_name(self.path.name + "-shm")) if not p.exists()]
        try:
            wait_s = OPEN_TIMEOUT_S if open_timeout_s is None else open_timeout_s
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=wait_s,
                                       isolation_level=None)  # autocommit; explicit transactions below
        except sqlite3.Error as err:
            raise self._error(err) from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.execute("SELECT COUNT(*) FROM responses").fetchone()  # reads the table's pages
            # another process writing to this cache (a second `judge grade` of the same run) holds
            # the write lock: say so now, before any judgment is sent or written
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")
        except sqlite3.Error as err:
            self._db.close()
            for side in sidecars:  # the WAL files this failed open made (a full disk leaves them)
                try:
                    if side.stat().st_size == 0 or side.name.endswith("-shm"):
                        side.unlink()
                except OSError:
                    pass
            raise self._error(err) from None
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")

    def _error(self, err: sqlite3.Error) -> JudgeError:
        """One line for a cache that cannot be used: locked by another process, or corrupt."""
        text = " ".join(str(err).split())
        low = text.lower()
        if "locked" in low or "busy" in low:
            return JudgeError("the judge cache is locked by another process (is another `judge "
                              "grade` of this run still running?); wait for it or stop it, then "
                              "rerun", path=self.path)
        if "disk i/o error" in low:  # SQLite's word for a failed write, a full disk among others
            try:
                st = os.statvfs(self.path.parent)
                if st.f_bavail * st.f_frsize < 1 << 20:
                    low = "full"
            except OSError:
                pass
            if low != "full":
                return JudgeError(f"the judge cache could not be written ({text}); check the disk "
                                  "and rerun", path=self.path)
        if "full" in low:
            return JudgeError("no space left on the device for the judge cache: free some space "
                              "and rerun the same command (finished items are kept)", path=self.path)
        if "readonly" in low or "read-only" in low or "unable to open" in low:
            return JudgeError(f"the judge cache cannot be written ({text}); make the run folder "
                              "writable", path=self.path)
        return JudgeError(f"the judge cache is not a usable SQLite database ({text}); move it aside "
                          "and rerun (finished judgments are kept in judgments/*.jsonl)", path=self.path)

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            row = self._db.execute(
                "SELECT model, schema_name, raw, verdict_json, prompt_tokens, completion_tokens, "
                "output_mode FROM responses WHERE key = ?", (key,)).fetchone()
        return CachedResponse(*row) if row else None

    def put(self, key: str, entry: CachedResponse) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, entry.model, entry.schema_name, entry.raw, entry.verdict_json,
                     entry.prompt_tokens, entry.completion_tokens, entry.output_mode, time.time()))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "JudgeCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
