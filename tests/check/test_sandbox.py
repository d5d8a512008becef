"""The sandbox (judge.check.sandbox): correct code passes, wrong code fails, and hostile code is
contained: it is reported as fail or error, leaves nothing behind, and the next run goes on.
Short limits keep each case under a couple of seconds."""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path

import pytest

from judge.check import Limits, check_turn, code_blocks, run_python, run_sql
from judge.schemas import PythonCheck, SqlCheck

# short CPU limits end endless loops fast; the wall limit leaves room for a loaded machine
FAST = Limits(cpu_s=1, wall_s=8.0, memory_bytes=512 << 20, file_bytes=256 << 10)
OK = Limits()  # the defaults, for code that should simply run
ADD = PythonCheck(kind="python", defines=["add"], tests=["add(2, 3) == 5", "add(-1, 1) == 0"])


def fence(code: str) -> str:
    return f"Here is my solution:\n\n```python\n{code}\n```\n"


def leftovers() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "judge-check-*")))


def test_correct_and_wrong_code() -> None:
    ok = run_python(["def add(a, b):\n    return a + b\n"], ADD, OK)
    assert ok.status == "pass" and ok.reason == "2 tests passed"
    bad = run_python(["def add(a, b):\n    return a - b\n"], ADD, FAST)
    assert bad.status == "fail" and bad.extracted == "add(2, 3) == 5" and bad.reason == "test is false"
    missing = run_python(["def plus(a, b):\n    return a + b\n"], ADD, FAST)
    assert missing.status == "fail" and missing.reason == "does not define add"
    raising = run_python(["def add(a, b):\n    raise KeyError('x')\n"], ADD, FAST)
    assert raising.status == "fail" and raising.reason == "KeyError: 'x'"


def test_later_turns_reuse_earlier_code_and_steps_and_raises() -> None:
    turns = [fence("def add(a, b):\n    return a + b"), fence("def add3(a, b, c):\n    return add(add(a, b), c)")]
    check = PythonCheck(kind="python", defines=["add3"], setup="box = []",
                        tests=["box.append(add3(1, 2, 3))", "box == [6]", "raises(TypeError, add3, 1)"])
    assert check_turn(check, turns, 2, OK).status == "pass"
    assert code_blocks("```js\nx\n```\n```\ny = 1\n```", ("python", "")) == ["y = 1\n"]


def test_sql() -> None:
    check = SqlCheck(kind="sql", setup="CREATE TABLE t (x INT); INSERT INTO t VALUES (1), (2), (3);",
                     expected=[[3], [2]])
    assert run_sql("SELECT x FROM t WHERE x > 1 ORDER BY x DESC;", check).status == "pass"
    assert run_sql("SELECT x FROM t WHERE x > 1 ORDER BY x;", check).status == "fail"
    unordered = check.model_copy(update={"ordered": False})
    assert run_sql("SELECT x FROM t WHERE x > 1 ORDER BY x;", unordered).status == "pass"
    assert run_sql("SELECT nope FROM t;", check).reason.startswith("query failed")
    attach = run_sql("ATTACH DATABASE 'x.db' AS x;\nSELECT x FROM t;", check)
    assert attach.status == "fail" and not Path("x.db").exists()  # only the last SELECT runs
    denied = run_sql("SELECT * FROM t WHERE x IN (SELECT 1 FROM pragma_database_list);", check)
    assert denied.status == "fail"


HOSTILE = {
    "writes outside": "open({target!r}, 'w').write('pwned')\ndef add(a, b):\n    return a + b",
    "reads the environment": ("import os\n"
                              "def add(a, b):\n    return os.environ.get('OPENAI_API_KEY') or str(os.environ)"),
    "reads the parent's environment": ("def add(a, b):\n    return open('/proc/%d/environ' % {ppid}).read()"),
    "reads the run folder": "def add(a, b):\n    return open({run_file!r}).read()",
    "opens a socket": ("import socket\ns = socket.create_connection(('127.0.0.1', 9))\n"
                       "def add(a, b):\n    return a + b"),
    "forks without end": "import os\nwhile True:\n    os.fork()",
    "spawns a process": "import subprocess\nsubprocess.run(['sh', '-c', 'touch {target}'])",
    "allocates without end": "x = []\nwhile True:\n    x.append(' ' * 10**7)",
    "loops forever": "while True:\n    pass",
    "prints megabytes": "import sys\nwhile True:\n    print('x' * 100000)",
    "writes megabytes to fd 1": "import os\nwhile True:\n    os.write(1, b'x' * 100000)",
    "exits": "import sys\nsys.exit(0)",
    "uses ctypes": "import ctypes\nctypes.CDLL(None).system(b'touch {target}')",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_code_is_contained(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-for-the-sandbox-test")
    target = tmp_path / "outside.txt"
    run_file = tmp_path / "run" / "manifest.json"
    run_file.parent.mkdir()
    run_file.write_text("secret run data")
    code = HOSTILE[name].format(target=str(target), run_file=str(run_file), ppid=os.getpid())
    before = leftovers()
    out = run_python([code], ADD, FAST)
    assert out.status in ("fail", "error"), (name, out)
    assert out.status != "pass"
    assert not target.exists(), name
    assert "secret" not in (out.reason + (out.extracted or "")), name
    assert leftovers() == before, name  # the temporary folder is gone
    # the next run goes on as usual
    assert run_python(["def add(a, b):\n    return a + b"], ADD, OK).status == "pass"


def test_hostile_reasons_say_what_happened() -> None:
    loop = run_python([HOSTILE["loops forever"]], ADD, Limits(cpu_s=1, wall_s=30.0))
    assert loop.status == "error" and "CPU time limit" in loop.reason
    sleep = run_python(["import time\ntime.sleep(60)"], ADD, Limits(cpu_s=5, wall_s=1.0))
    assert sleep.status == "error" and sleep.reason == "timed out after 1 s of wall time"
    sock = run_python([HOSTILE["opens a socket"]], ADD, FAST)
    assert sock.status == "fail" and "not allowed" in sock.reason


# --------------------------------------------------------------------------- each layer alone


def test_the_process_limit_alone_stops_a_fork() -> None:
    """Without the audit hook (a shell, not Python), RLIMIT_NPROC still refuses new processes."""
    import functools
    import subprocess

    from judge.check.sandbox import _limit

    if os.geteuid() == 0:
        pytest.skip("RLIMIT_NPROC does not bind root: running as root, the audit hook alone stops "
                    "forks (test_hostile_code_is_contained[forks without end])")
    proc = subprocess.run(["/bin/sh", "-c", "/bin/true & wait $!; echo forked"], capture_output=True,
                          text=True, timeout=30, preexec_fn=functools.partial(_limit, Limits()))
    assert "forked" not in proc.stdout
    free = subprocess.run(["/bin/sh", "-c", "/bin/true & wait $!; echo forked"], capture_output=True,
                          text=True, timeout=30)
    assert "forked" in free.stdout  # the same command forks without the limit


def test_the_network_namespace_alone_has_no_network() -> None:
    """Without the audit hook, a process in the sandbox's namespace cannot reach a local server."""
    import shutil
    import socket
    import subprocess
    import sys

    from judge.check import network_isolation

    if network_isolation() != "namespace":
        pytest.skip("unprivileged network namespaces are not available here (the audit hook alone "
                    "blocks sockets; see test_hostile_code_is_contained)")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('reached')"
    try:
        inside = subprocess.run([shutil.which("unshare") or "unshare", "--net", "--map-root-user",
                                 sys.executable, "-I", "-c", code], capture_output=True, text=True,
                                timeout=30)
        outside = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                                 timeout=30)
    finally:
        server.close()
    assert "reached" not in inside.stdout and inside.returncode != 0
    assert "reached" in outside.stdout  # the same code reaches it from the host's namespace
