"""judge.logs: other programs' output goes to RUN/logs/, judge's own lines keep the terminal."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from judge.errors import EngineError
from judge.logs import engine_output, set_verbose


@pytest.fixture(autouse=True)
def _quiet():
    set_verbose(False)
    yield
    set_verbose(False)


def run_script(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python whose stdout and stderr are pipes (as under CI or a pager):
    pytest's own capture replaces sys.stdout, which would hide what descriptors 1 and 2 do."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60)


def test_fds_of_this_process_and_its_children_go_to_the_log(tmp_path: Path) -> None:
    proc = run_script(f"""
        import os, subprocess, sys, warnings
        from pathlib import Path
        from judge.logs import engine_output, terminal

        print("before the block", flush=True)
        with engine_output(Path({str(tmp_path / "logs")!r}), "generate-baseline") as log:
            print("from python's stdout")
            print("from python's stderr", file=sys.stderr)
            warnings.warn("a library warning", FutureWarning, stacklevel=1)
            subprocess.run([sys.executable, "-c", "import os; os.write(1, b'child fd 1\\\\n'); "
                            "os.write(2, b'child fd 2\\\\n')"], check=True)
            os.write(1, b"raw fd 1\\n")
            terminal().write("judge's own line\\n")
        print("after the block")
    """)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "logs" / "generate-baseline.log").read_text()
    terminal_text = proc.stdout + proc.stderr
    for line in ("from python's stdout", "from python's stderr", "a library warning",
                 "child fd 1", "child fd 2", "raw fd 1"):
        assert line in text and line not in terminal_text
    assert proc.stderr == "judge's own line\n"
    assert proc.stdout == "before the block\nafter the block\n"
    assert "judge: generate-baseline" in text.splitlines()[1]


def test_nested_blocks_restore_the_outer_log_and_the_log_is_appended(tmp_path: Path) -> None:
    proc = run_script(f"""
        from pathlib import Path
        from judge.logs import engine_output

        d = Path({str(tmp_path)!r})
        with engine_output(d, "outer"):
            print("outer 1", flush=True)
            with engine_output(d, "inner"):
                print("inner", flush=True)
            print("outer 2", flush=True)
        with engine_output(d, "outer"):
            print("outer again", flush=True)
    """)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr
    o, i = (tmp_path / "outer.log").read_text(), (tmp_path / "inner.log").read_text()
    assert [ln for ln in o.splitlines() if ln and not ln.startswith("===")] == [
        "outer 1", "outer 2", "outer again"]
    assert [ln for ln in i.splitlines() if ln and not ln.startswith("===")] == ["inner"]


def test_engine_error_names_the_log_and_other_tracebacks_land_in_it(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as caught:
        with engine_output(tmp_path, "generate-compressed"):
            subprocess.run([sys.executable, "-c", "print('engine: loading /m')"], check=True)
            raise EngineError("vLLM could not load /m: RuntimeError: boom")
    assert str(caught.value) == (f"vLLM could not load /m: RuntimeError: boom "
                                 f"(log: {tmp_path / 'generate-compressed.log'})")
    with pytest.raises(ZeroDivisionError):
        with engine_output(tmp_path, "diverge-baseline") as log:
            1 / 0  # noqa: B018
    assert "Traceback" in log.read_text() and "ZeroDivisionError" in log.read_text()


def test_verbose_streams_the_log_to_the_terminal(tmp_path: Path) -> None:
    proc = run_script(f"""
        import subprocess, sys
        from pathlib import Path
        from judge.logs import engine_output, set_verbose

        set_verbose(True)
        with engine_output(Path({str(tmp_path)!r}), "grade"):
            subprocess.run([sys.executable, "-c", "print('engine says hello')"], check=True)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "engine says hello" in (tmp_path / "grade.log").read_text()
    assert "engine says hello" in proc.stderr and "engine says hello" not in proc.stdout


def test_a_block_nobody_wrote_to_leaves_no_trace(tmp_path: Path) -> None:
    logs = tmp_path / "run" / "logs"
    with engine_output(logs, "grade"):
        pass
    assert not logs.exists()
    logs.mkdir()
    (logs / "grade.log").write_text("earlier run\n")
    with engine_output(logs, "grade"):
        pass
    assert (logs / "grade.log").read_text() == "earlier run\n"
    with pytest.raises(EngineError) as caught:
        with engine_output(logs, "generate-baseline"):
            raise EngineError("no engine")
    assert sorted(p.name for p in logs.iterdir()) == ["grade.log"]
    assert str(caught.value) == "no engine"  # no path to a log that is not there
