"""Helpers for the service tests: a completed comparison made from the synthetic run folder (known
grades, a hostile answer, token KL added to its flagged items), and a real uvicorn server in a
child process on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from synthetic_run import SCRIPT_PAYLOAD, write_synthetic_run

from judge.report import write_reports
from judge.scorecard import build_report
from judge.scorecard.schema import TokenSpan

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "t" * 8 + "-service-test-token"
HOSTILE = SCRIPT_PAYLOAD


def completed_comparison(outputs: Path, cid: str = "synthetic01", name: str = "synthetic-run") -> Path:
    """Write the synthetic run under ``outputs/name``, its reports, and index it as completed."""
    from judge.service.db import Index

    run = write_synthetic_run(outputs / name)
    card, flagged = build_report(run, n_resamples=200, method="percentile", min_questions=2)
    # token KL as the divergence stage would give it (hand-made here: three spans per answer)
    flagged = [i.model_copy(update={"tokens": [
        TokenSpan(text=(i.baseline_answer or "")[:10], kl=0.0005),
        TokenSpan(text=(i.baseline_answer or "")[10:20], kl=0.5, top1=False),
        TokenSpan(text=(i.baseline_answer or "")[20:], kl=2.0)]}) for i in flagged]
    write_reports(run, card, flagged)
    index = Index(outputs)
    index.add(cid, str(run.root.resolve()), "baseline-spec", ["compressed-spec"],
              {"baseline": {"spec": "baseline-spec"}}, None)
    index.update(cid, status="completed", exit_code=0, finished=time.time(), started=time.time())
    return run.root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`judge serve` in a child process (its own process group), for real HTTP tests."""

    def __init__(self, outputs: Path, *, token_file: Path, slots: int = 1, env: dict | None = None,
                 extra: list[str] | None = None):
        self.outputs, self.token_file, self.slots = outputs, token_file, slots
        self.extra = list(extra or [])
        self.env = dict(os.environ, **(env or {}))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = outputs / f"server-{self.port}.log"

    def start(self, timeout_s: float = 60) -> "Server":
        self.env["PYTHONPATH"] = str(ROOT) + os.pathsep + str(ROOT / "tests")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "judge", "serve", "--port", str(self.port), "--outputs",
             str(self.outputs), "--token-file", str(self.token_file), "--slots", str(self.slots),
             *self.extra],
            cwd=ROOT, env=self.env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"judge serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/v1/comparisons", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("judge serve did not start")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}", "X-Judge-Client": "test"}
