"""Helpers shared by the reliability tests: a synthetic run folder, the CLI as a subprocess, and
checks that every JSONL file of a run folder is whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from judge.questions import load_questions
from judge.schemas import Answer, AnswerChoice, Question
from judge.store import Run, append_jsonl, iter_jsonl_raw

ROOT = Path(__file__).resolve().parent.parent


def write_questions(path: Path, n: int, *, every_reference: int = 3) -> Path:
    """``n`` two-turn questions; every ``every_reference``-th one is a math question with references."""
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            row: dict[str, object] = {"question_id": i + 1, "category": "writing",
                                      "turns": [f"Question {i + 1}, first turn?",
                                                f"Question {i + 1}, second turn?"]}
            if every_reference and i % every_reference == 0:
                row.update(category="math", reference=[f"ref {i + 1}.1", f"ref {i + 1}.2"])
            fh.write(json.dumps(row) + "\n")
    return path


AnswerText = Callable[[str, Question, int], str]


def default_answer(role: str, q: Question, turn: int) -> str:
    return f"The {role} answer to question {q.key}, turn {turn}."


def synthetic_run(root: Path, qfile: Path, roles: tuple[str, ...] = ("baseline", "compressed"),
                  text: AnswerText = default_answer) -> Run:
    """A run folder holding a manifest with the question set and one answer per role and question."""
    info, questions = load_questions(str(qfile))
    run = Run(root)
    run.update_manifest(questions=info)
    for role in roles:
        append_jsonl(run.answers_path(role), [
            Answer(question_id=q.question_id, answer_id=f"{role}-{q.key}", model_id=f"model-{role}",
                   choices=[AnswerChoice(index=0, turns=[text(role, q, t + 1)
                                                         for t in range(len(q.turns))])],
                   tstamp=0.0, role=role, category=q.category)
            for q in questions])
    return run


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for `python -m judge` subprocesses: offline, one thread, the repo importable."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT),
               NO_COLOR="1", TERM="dumb")
    env.update(extra)
    return env


def judge_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "judge", *args]


def run_cli(args: list[str], env: dict[str, str], timeout_s: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(judge_cmd(*args), env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s)


def dead_url() -> str:
    """A loopback OpenAI base URL where nothing listens (a port bound and released)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def jsonl_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.jsonl") if p.is_file())


def torn_lines(path: Path) -> list[str]:
    """Problems that would make a reader misparse ``path``: a line in the middle that is not one
    whole JSON object, or a file that judge's own reader rejects. A final line without its newline
    is a torn *tail*, which the reader skips by design (and the next append cuts off)."""
    problems: list[str] = []
    data = path.read_bytes()
    lines = data.split(b"\n")
    for i, raw in enumerate(lines[:-1], start=1):  # every line that ends with a newline
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            problems.append(f"{path}:{i}: not a whole JSON line")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{path}:{i}: not a JSON object")
    try:
        list(iter_jsonl_raw(path))
    except Exception as err:  # noqa: BLE001 - any failure of the reader is the finding
        problems.append(f"{path}: judge's reader fails: {err}")
    return problems


def has_torn_tail(path: Path) -> bool:
    data = path.read_bytes()
    return bool(data) and not data.endswith(b"\n")


class OddServer:
    """An HTTP server on 127.0.0.1 that is not a working OpenAI API, for the endpoint checks.

    ``kind``: "html" answers every request with a web page (a proxy's login page, a wrong path),
    "reject" with 401 to every key, "hang" accepts the connection and never answers, "nothttp"
    answers with another protocol's banner.
    """

    def __init__(self, kind: str):
        import socket
        import threading

        self.kind = kind
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._open: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self.kind == "hang":
                self._open.append(conn)  # keep it open, say nothing
                continue
            try:
                conn.settimeout(2.0)
                conn.recv(65536)
                if self.kind == "nothttp":  # another protocol on the port
                    conn.sendall(b"SSH-2.0-OpenSSH_9.0\r\n")
                    continue
                if self.kind == "html":
                    body = b"<!DOCTYPE html><html><body><h1>Sign in</h1></body></html>"
                    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                else:
                    body = json.dumps({"error": {"message": "Incorrect API key provided",
                                                 "type": "invalid_request_error"}}).encode()
                    head = b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                conn.sendall(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self._stop = True
        self._sock.close()
        for conn in self._open:
            conn.close()
