"""The job runner: the queue of comparisons, ``--slots`` child processes at a time, cancel, resume.

One thread polls the index a few times a second. It launches the oldest queued comparisons while
slots are free (queue order kept), each as a child process (`judge.service.child`: the stage code
of `judge compare`, writing the comparison's run folder) in its own process group, its output in
``RUN/logs/service-job.log`` and its progress in ``RUN/service/progress.jsonl``. A cancel sends
SIGTERM to the child's group (finished items are saved; SIGKILL only after `CANCEL_GRACE_S`).

At start-up, comparisons the index still calls ``running`` (the server stopped or was killed) are
resumed first: a leftover child is stopped, then a new one continues from the run folder, so
nothing finished is recomputed and no judge request is repeated. Queued ones stay queued.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from judge.service.db import ComparisonRow, Index

CANCEL_GRACE_S = 30.0
POLL_S = 0.2
LOG_NAME = "service-job.log"
GATE_CODES = {1, 3}  # `judge compare` exits with the gate's code when the gate does not pass


def service_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "service"


def progress_path(run_dir: Path) -> Path:
    return service_dir(run_dir) / "progress.jsonl"


def log_path(run_dir: Path) -> Path:
    return Path(run_dir) / "logs" / LOG_NAME


@dataclass
class Child:
    cid: str
    job_id: int
    proc: subprocess.Popen
    started: float
    log: object
    term_sent: float | None = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def stop_group(pid: int, grace_s: float = CANCEL_GRACE_S) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL it if still there after ``grace_s``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.time() + grace_s
    while time.time() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def error_line(log: Path) -> str:
    """The child's one-line error (`judge: error: ...`), else its last line."""
    try:
        lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines()
                 if ln.strip()]
    except OSError:
        return "the job failed and left no log"
    for ln in reversed(lines):
        if ln.startswith("judge: "):
            return ln[:500]
    return (lines[-1] if lines else "the job failed without output")[:500]


class Runner:
    """Runs the comparisons of one outputs folder; `start` it once, `stop` it on shutdown."""

    def __init__(self, index: Index, outputs: Path, slots: int = 1, executor: dict | None = None):
        self.index, self.outputs, self.slots = index, Path(outputs), max(1, slots)
        self.executor = executor  # the server's choice, given to every job's config
        self.children: dict[str, Child] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    # lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self._recover()
        self._thread = threading.Thread(target=self._loop, name="judge-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and the children; their comparisons stay ``running`` and resume later."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for child in list(self.children.values()):
            stop_group(child.proc.pid)
            code = child.proc.wait()
            self.index.job_finished(child.job_id, code)
            child.log.close()  # type: ignore[attr-defined]
        self.children.clear()

    def wake(self) -> None:
        self._wake.set()

    def _recover(self) -> None:
        for row in self.index.running():
            job = self.index.open_job(row.id)
            if job is not None:
                if job["pid"] and _alive(job["pid"]):
                    stop_group(job["pid"])
                self.index.job_finished(job["id"], None)
            if row.cancel_requested:
                self.index.update(row.id, status="cancelled", finished=time.time())
            else:
                self._launch(row)

    # the loop ---------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as err:  # noqa: BLE001 - the runner must outlive one bad comparison
                print(f"judge serve: job runner: {type(err).__name__}: {err}", file=sys.stderr)
            self._wake.wait(POLL_S)
            self._wake.clear()

    def tick(self) -> None:
        for cid, child in list(self.children.items()):
            code = child.proc.poll()
            row = self.index.get(cid)
            if code is None:
                if row is not None and row.cancel_requested and child.term_sent is None:
                    child.term_sent = time.time()
                    os.killpg(child.proc.pid, signal.SIGTERM)
                elif child.term_sent and time.time() - child.term_sent > CANCEL_GRACE_S:
                    os.killpg(child.proc.pid, signal.SIGKILL)
                continue
            self._finish(child, code, row)
        if self._stop.is_set():
            return
        for row in self.index.queued():
            if len(self.children) >= self.slots:
                break
            if self.index.claim(row.id):
                self._launch(self.index.get(row.id) or row)

    # one child --------------------------------------------------------------------
    def _launch(self, row: ComparisonRow) -> None:
        run_dir = Path(row.run_dir)
        sdir = service_dir(run_dir)
        sdir.mkdir(parents=True, exist_ok=True)
        (run_dir / "logs").mkdir(exist_ok=True)
        if not self.index.jobs(row.id):  # a new comparison in a reused run folder: fresh progress
            progress_path(run_dir).unlink(missing_ok=True)
        config = sdir / "config.json"
        compare = dict(row.config)
        if self.executor is not None:
            compare["executor"] = {**(compare.get("executor") or {}), **self.executor}
        config.write_text(json.dumps({"config": {"compare": compare}}, indent=1) + "\n",
                          encoding="utf-8")
        env = dict(os.environ, JUDGE_PROGRESS_FILE=str(progress_path(run_dir)),
                   JUDGE_OUTPUTS=str(self.outputs), PYTHONUNBUFFERED="1")
        if row.key_env:
            env["JUDGE_API_KEY"] = os.environ.get(row.key_env, "")
        log = open(log_path(run_dir), "a", encoding="utf-8")
        log.write(f"--- judge serve: job for comparison {row.id} started {time.ctime()}\n")
        log.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "judge.service.child", str(config), str(os.getpid())],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True, cwd=os.getcwd())
        job_id = self.index.job_started(row.id, proc.pid)
        self.index.update(row.id, status="running", error=None, exit_code=None)
        self.children[row.id] = Child(row.id, job_id, proc, time.time(), log)

    def _finish(self, child: Child, code: int, row: ComparisonRow | None) -> None:
        del self.children[child.cid]
        child.log.close()  # type: ignore[attr-defined]
        self.index.job_finished(child.job_id, code)
        if row is None:
            return
        run_dir = Path(row.run_dir)
        gate = run_dir / "gate.json"
        gate_written = gate.is_file() and gate.stat().st_mtime >= child.started - 1
        now = time.time()
        if code == 0 or (code in GATE_CODES and gate_written):
            self.index.update(child.cid, status="completed", exit_code=code, finished=now)
        elif row.cancel_requested:
            self.index.update(child.cid, status="cancelled", exit_code=code, finished=now)
        else:
            self.index.update(child.cid, status="failed", exit_code=code, finished=now,
                              error=error_line(log_path(run_dir)))
        self._wake.set()

    def cancel(self, cid: str) -> ComparisonRow | None:
        """Queued: cancelled at once. Running: SIGTERM to its child; ``cancelled`` when it exits."""
        row = self.index.get(cid)
        if row is None or row.status not in ("queued", "running"):
            return row
        self.index.update(cid, cancel_requested=1)
        if row.status == "queued":
            with self.index.connect() as db:
                db.execute("UPDATE comparisons SET status = 'cancelled', finished = ?, "
                           "version = version + 1 WHERE id = ? AND status = 'queued'",
                           (time.time(), cid))
        self.wake()
        return self.index.get(cid)
