"""Reliability 4: API keys never reach a file, a log, a message or a traceback.

A unique canary key is given through ``JUDGE_API_KEY`` or ``OPENAI_API_KEY``; `judge grade` runs as
a subprocess against a loopback server that records the ``Authorization`` header it receives (so
the key was really used), including a hostile server that writes the header back into every error
and reply, an unreachable endpoint and a rejected key with ``--debug`` (tracebacks). Afterwards
every file under the scratch folder (run folder, judge cache, logs, $JUDGE_CACHE, the working
directory) and the captured stdout and stderr are scanned for the canary.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from fault_openai import FaultOpenAIServer
from reliability_support import cli_env, dead_url, judge_cmd, synthetic_run, write_questions

from judge.store import Run


def canary() -> str:
    return f"sk-canary-{uuid.uuid4().hex}"


def scan(root: Path, secret: str) -> list[str]:
    """Every file under ``root`` holding ``secret`` (as bytes, in any file type)."""
    needle = secret.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def grade(tmp: Path, run: Run, env: dict[str, str], *args: str, debug: bool = False
          ) -> subprocess.CompletedProcess:
    cmd = judge_cmd(*(["--debug"] if debug else []), "grade", str(run.root), *args)
    return subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Path, Run]:
    run = synthetic_run(tmp_path / "outputs" / "run", write_questions(tmp_path / "q.jsonl", 3))
    return tmp_path, run


def _env(tmp: Path, **keys: str) -> dict[str, str]:
    env = cli_env(JUDGE_CACHE=str(tmp / "cache"), JUDGE_OUTPUTS=str(tmp / "outputs"), **keys)
    for name in ("JUDGE_API_KEY", "OPENAI_API_KEY"):
        if name not in keys:
            env.pop(name, None)
    return env


@pytest.mark.parametrize("variable", ["JUDGE_API_KEY", "OPENAI_API_KEY"])
@pytest.mark.parametrize("leak_auth", [False, True], ids=["honest-server", "server-echoes-the-key"])
def test_a_key_from_the_environment_is_used_and_never_written(variable: str, leak_auth: bool,
                                                              setup: tuple[Path, Run]) -> None:
    tmp, run = setup
    key = canary()
    # a few faults too, so error texts are recorded in the judgments
    with FaultOpenAIServer({"500": 0.2, "schema_invalid": 0.1}, seed=3, leak_auth=leak_auth) as srv:
        out = grade(tmp, run, _env(tmp, **{variable: key}), "--judge", "fake-judge",
                    "--judge-base-url", srv.base_url, "--no-progress")
    assert out.returncode == 0, out.stderr
    assert srv.authorizations and set(srv.authorizations) == {f"Bearer {key}"}  # the key was sent
    assert run.single_path.is_file() and run.judge_cache_path.is_file()
    if leak_auth:  # the server did put the key into replies and errors that judge records
        assert srv.counts["500"] + srv.counts["ok"] > 0
    assert key not in out.stdout + out.stderr
    assert scan(tmp, key) == []


@pytest.mark.parametrize("case", ["unreachable", "rejected-key", "every-request-fails"])
def test_no_key_in_error_messages_or_debug_tracebacks(case: str, setup: tuple[Path, Run]) -> None:
    tmp, run = setup
    key = canary()
    env = _env(tmp, JUDGE_API_KEY=key, OPENAI_API_KEY=key)
    if case == "unreachable":
        for debug in (False, True):
            out = grade(tmp, run, env, "--judge", "m", "--judge-base-url", dead_url(), debug=debug)
            assert out.returncode != 0
            assert ("Traceback" in out.stderr) == debug
            assert key not in out.stdout + out.stderr
    elif case == "rejected-key":
        with FaultOpenAIServer({}, leak_auth=True) as srv:
            srv.reject_key = True
            for debug in (False, True):
                out = grade(tmp, run, env, "--judge", "m", "--judge-base-url", srv.base_url,
                            debug=debug)
                assert out.returncode != 0 and "rejected the API key" in out.stderr
                assert key not in out.stdout + out.stderr
        assert srv.rejected >= 2
    else:
        with FaultOpenAIServer({"503": 1.0}, leak_auth=True) as srv:
            for debug in (False, True):
                out = grade(tmp, run, env, "--judge", "m", "--judge-base-url", srv.base_url,
                            "--max-retries", "0", debug=debug)
                assert out.returncode == (1 if debug else 2), out.stderr  # --debug: a traceback
                assert "failed every request" in out.stderr
                assert ("Traceback" in out.stderr) == debug
                assert key not in out.stdout + out.stderr
        assert set(srv.authorizations) == {f"Bearer {key}"}
    assert scan(tmp, key) == []


def test_a_local_judge_server_gets_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The vLLM judge server is started without the keys in its environment, and its log (the
    command line) holds none."""
    import judge.grade.server as js

    key = canary()
    monkeypatch.setenv("JUDGE_API_KEY", key)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    seen: dict[str, object] = {}

    class FakeProc:
        returncode = 1
        pid = 2 ** 22 + 1  # no such process: killpg fails harmlessly

        def poll(self) -> int:
            return 1

        def wait(self, timeout: float | None = None) -> int:
            return 1

    def fake_popen(cmd, **kwargs):
        seen["cmd"], seen["env"] = cmd, kwargs["env"]
        return FakeProc()

    import judge.generate

    monkeypatch.setattr(judge.generate, "vllm_available", lambda: True)  # the server asks the package
    monkeypatch.setattr(js.subprocess, "Popen", fake_popen)
    server = js.LocalJudgeServer(tmp_path / "model", "m", tmp_path / "logs" / "judge-server.log",
                                 startup_timeout_s=1)
    with pytest.raises(js.JudgeEndpointError):
        server.start()
    env = seen["env"]
    assert isinstance(env, dict) and "JUDGE_API_KEY" not in env and "OPENAI_API_KEY" not in env
    assert key not in " ".join(map(str, seen["cmd"]))  # type: ignore[arg-type]
    assert scan(tmp_path, key) == []
