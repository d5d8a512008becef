"""Run an answer's code against a check, contained: Python in a sandboxed child process, SQL on
an in-memory SQLite database.

Python containment, layer by layer (docs in questions/README.md, "The sandbox"):
  * a separate process, ``python -I`` (no user site, no ``PYTHON*`` variables), with a clean
    environment (``PATH``, ``LANG``, ``HOME``/``TMPDIR`` = the temporary folder; no keys or tokens);
  * a fresh temporary working folder, removed afterwards;
  * ``resource.setrlimit`` before exec: CPU seconds, address space, processes (``RLIMIT_NPROC``),
    file size (which also caps what the process may print), no core files;
  * a wall-clock timeout, after which the whole process group is killed;
  * no network: a new network namespace (``unshare --net --map-root-user``) when the kernel allows
    it, and always an audit hook (``sys.addaudithook``) in the child that refuses sockets,
    subprocesses, ``fork``/``exec``/``kill``, ``ctypes``, writes outside the temporary folder and
    reads outside it and the Python installation (so the run folder cannot be read).
``RLIMIT_NPROC`` does not bind a root user: when judge runs as root (as in some containers), the
hook is what stops ``fork``/``exec``, and the process-group kill at the end removes any process
that got through. The hook protects the machine, not the verdict: deliberately hostile code could
still forge its own result line. SQL runs in-process with ``ATTACH`` refused and a time limit.
"""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from judge.check.extract import Outcome
from judge.schemas import PythonCheck, SqlCheck

RESULT_MARK = "\x00judge-check-result "


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run."""

    cpu_s: int = 10
    wall_s: float = 15.0
    memory_bytes: int = 1 << 30  # address space
    nproc: int = 0  # new processes or threads the child may create beyond its user's current ones
    file_bytes: int = 1 << 20  # largest file, including what is printed
    output_bytes: int = 1 << 16  # how much printed output the harness keeps per stream


@functools.lru_cache(maxsize=1)
def network_isolation() -> str:
    """``"namespace"`` when ``unshare --net`` works here (then also the audit hook), else ``"audit hook"``."""
    exe = shutil.which("unshare")
    if exe is None:
        return "audit hook"
    try:
        ok = subprocess.run([exe, "--net", "--map-root-user", "true"], capture_output=True,
                            timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return "namespace" if ok else "audit hook"


# The child's harness: installs the audit hook, runs the answer's code blocks, then the check's
# setup and tests; prints one result line. Stdout/stderr of the answer go to a bounded sink.
HARNESS = r'''
import io, json, os, sys
job = json.loads(sys.stdin.read())
MARK = job["mark"]
real_out = sys.__stdout__
def under(p, roots):
    return any(p == r or p.startswith(r.rstrip(os.sep) + os.sep) for r in roots)
TMP = os.path.realpath(job["tmp"])
READ = [TMP] + [os.path.realpath(p) for p in job["read_roots"]] + ["/dev/null", "/dev/urandom"]
BLOCK_PREFIX = ("socket.", "subprocess.", "os.fork", "os.forkpty", "os.system", "os.exec",
                "os.posix_spawn", "os.spawn", "os.kill", "os.killpg", "pty.", "ctypes.",
                "os.setuid", "resource.setrlimit", "sys.remote_exec")
PATH_EVENTS = {"os.remove", "os.rename", "os.mkdir", "os.rmdir", "shutil.rmtree", "os.chmod",
               "os.symlink", "os.link", "os.truncate", "os.utime", "os.chown",
               "shutil.copyfile", "shutil.move", "os.chroot"}
READ_EVENTS = {"os.listdir", "os.scandir", "os.chdir"}
WFLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
class Denied(PermissionError):
    pass
def hook(event, args):
    if event.startswith(BLOCK_PREFIX):
        raise Denied(f"sandbox: {event} is not allowed")
    if event == "import" and args[0] in ("ctypes", "_ctypes", "_posixsubprocess", "socket", "_socket"):
        raise Denied(f"sandbox: importing {args[0]} is not allowed")
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int) or path is None:
            return
        p = os.path.realpath(os.fsdecode(path))
        writing = bool((flags or 0) & WFLAGS) or any(c in (mode or "") for c in "wax+")
        if writing and not under(p, [TMP]):
            raise Denied(f"sandbox: writing {p} is not allowed")
        if not writing and not under(p, READ):
            raise Denied(f"sandbox: reading {p} is not allowed")
    elif event in PATH_EVENTS or event in READ_EVENTS:
        roots = READ if event in READ_EVENTS else [TMP]
        for a in args:
            if isinstance(a, (str, bytes, os.PathLike)):
                p = os.path.realpath(os.fsdecode(a))
                if not under(p, roots):
                    raise Denied(f"sandbox: {event} on {p} is not allowed")
                break
class Sink(io.TextIOBase):
    def __init__(self, cap):
        self.cap, self.parts, self.n = cap, [], 0
    def writable(self):
        return True
    def write(self, s):
        if self.n < self.cap:
            self.parts.append(s[: self.cap - self.n])
        self.n += len(s)
        return len(s)
def raises(exc, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc:
        return True
    except BaseException:
        return False
    return False
sys.addaudithook(hook)
out, err = Sink(job["output_bytes"]), Sink(job["output_bytes"])
sys.stdout, sys.stderr = out, err
ns = {"__name__": "__answer__", "__builtins__": __builtins__, "raises": raises}
res = {"status": "pass", "reason": "", "test": None, "passed": 0}
def brief(e):
    return f"{type(e).__name__}: {e}"[:300]
errors = []
for i, block in enumerate(job["blocks"]):
    try:
        exec(compile(block, f"<answer block {i + 1}>", "exec"), ns)
    except BaseException as e:
        errors.append(f"block {i + 1}: {brief(e)}")
missing = [d for d in job["defines"] if d not in ns]
if missing:
    res = {"status": "fail", "test": None, "passed": 0,
           "reason": f"does not define {', '.join(missing)}" + (f" ({errors[0]})" if errors else "")}
else:
    try:
        exec(compile(job["setup"], "<check setup>", "exec"), ns)
    except BaseException as e:
        res = {"status": "fail", "test": "setup", "passed": 0, "reason": f"setup failed: {brief(e)}"}
    else:
        for t in job["tests"]:
            try:
                try:
                    code = compile(t, "<test>", "eval")
                except SyntaxError:
                    exec(compile(t, "<test>", "exec"), ns)
                    ok = True
                else:
                    value = eval(code, ns)
                    ok = value is None or bool(value)  # None: a step such as s.add(1, 2)
            except BaseException as e:
                res = {"status": "fail", "test": t, "passed": res["passed"], "reason": brief(e)}
                break
            if not ok:
                res = {"status": "fail", "test": t, "passed": res["passed"], "reason": "test is false"}
                break
            res["passed"] += 1
res["printed"] = out.n + err.n
real_out.write("\n" + MARK + json.dumps(res) + "\n")
real_out.flush()
os._exit(0)
'''


def _read_roots() -> list[str]:
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(p for p in (sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib"))
                 if p)
    return sorted(roots)


def _limit(limits: Limits) -> None:  # runs in the child, between fork and exec
    def cap(which: int, value: int, slack: int = 0) -> None:
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        top = value + slack if hard == resource.RLIM_INFINITY else min(value + slack, hard)
        resource.setrlimit(which, (value, top))

    cap(resource.RLIMIT_CPU, limits.cpu_s, slack=1)  # SIGXCPU at the soft limit, SIGKILL 1 s later
    cap(resource.RLIMIT_AS, limits.memory_bytes)
    cap(resource.RLIMIT_FSIZE, limits.file_bytes)
    cap(resource.RLIMIT_CORE, 0)
    uid = os.getuid()
    running = 0
    for p in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            running += p.isdigit() and os.stat(f"/proc/{p}").st_uid == uid
        except OSError:
            pass
    cap(resource.RLIMIT_NPROC, running + limits.nproc + 1)


def _command() -> list[str]:
    cmd = [sys.executable, "-I", "-c", HARNESS]
    if network_isolation() == "namespace":
        cmd = [shutil.which("unshare") or "unshare", "--net", "--map-root-user", *cmd]
    return cmd


def run_python(blocks: list[str], check: PythonCheck, limits: Limits = Limits()) -> Outcome:
    """Run the answer's code ``blocks`` and the check's tests in a sandboxed process."""
    if not any(b.strip() for b in blocks):
        return Outcome(status="fail", reason="no Python code in the answer")
    tmp = tempfile.mkdtemp(prefix="judge-check-")
    job = {"mark": RESULT_MARK, "tmp": tmp, "read_roots": _read_roots(), "blocks": blocks,
           "defines": check.defines, "setup": check.setup, "tests": check.tests,
           "output_bytes": limits.output_bytes}
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": tmp, "TMPDIR": tmp}
    wall = min(limits.wall_s, check.timeout_s)
    out_path, err_path = Path(tmp) / ".stdout", Path(tmp) / ".stderr"
    try:
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(_command(), stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    cwd=tmp, env=env, start_new_session=True,
                                    preexec_fn=functools.partial(_limit, limits))
            started = time.monotonic()
            timed_out = False
            try:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps(job).encode())
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                proc.wait(timeout=max(0.1, wall - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the child and anything it left behind
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        return _outcome(out_path, err_path, proc.returncode, timed_out, wall)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _tail(path: Path, n: int = 1 << 16) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - n))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _outcome(out_path: Path, err_path: Path, code: int, timed_out: bool, wall: float) -> Outcome:
    text = _tail(out_path)
    if timed_out:
        return Outcome(status="error", reason=f"timed out after {wall:g} s of wall time")
    idx = text.rfind(RESULT_MARK)
    if idx >= 0:
        try:
            res = json.loads(text[idx + len(RESULT_MARK):].splitlines()[0])
        except (ValueError, IndexError):
            res = None
        if isinstance(res, dict) and res.get("status") in ("pass", "fail"):
            return Outcome(status=res["status"], extracted=res.get("test"),
                           reason=str(res.get("reason") or f"{res.get('passed', 0)} tests passed"))
    if code == -signal.SIGXCPU or code == -signal.SIGKILL and not timed_out:
        why = "CPU time limit reached" if code == -signal.SIGXCPU else "killed"
    elif code == -signal.SIGXFSZ:
        why = "output or file size limit reached"
    elif code < 0:
        why = f"killed by signal {-code}"
    else:
        last = [ln for ln in _tail(err_path, 4096).splitlines() if ln.strip()]
        why = f"exited with status {code}" + (f": {last[-1][:200]}" if last else "")
    return Outcome(status="error", reason=f"no result ({why})")


# --------------------------------------------------------------------------- SQL

_DENY = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH}


def run_sql(query: str, check: SqlCheck, timeout_s: float = 5.0) -> Outcome:
    """Run ``query`` on an in-memory database built by the check's setup; compare the rows."""
    statements = [s.strip() for s in re.split(r";\s*(?:\n|$)", query) if s.strip()]
    selects = [s for s in statements if re.match(r"(?is)^\s*(?:--[^\n]*\n\s*)*(select|with)\b", s)]
    if not selects:
        return Outcome(status="fail", reason="no SELECT query in the answer")
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(check.setup)
        db.set_authorizer(lambda action, *_: sqlite3.SQLITE_DENY if action in _DENY
                          else sqlite3.SQLITE_OK)
        deadline = time.monotonic() + timeout_s
        db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            rows = [list(r) for r in db.execute(selects[-1]).fetchall()]
        except sqlite3.Error as err:
            if time.monotonic() > deadline:
                return Outcome(status="error", reason=f"query ran past {timeout_s:g} s")
            return Outcome(status="fail", reason=f"query failed: {err}")
    finally:
        db.close()
    want = [list(r) for r in check.expected]
    shown = json.dumps(rows[:20], default=str)[:300]
    if not check.ordered:
        rows, want = sorted(rows, key=repr), sorted(want, key=repr)
    if rows == want:
        return Outcome(status="pass", extracted=shown)
    return Outcome(status="fail", extracted=shown, reason=f"expected {json.dumps(check.expected)[:300]}")
