"""`judge.cli.failures`: what the CLI prints for failures that are not `JudgeError`s."""

from __future__ import annotations

import errno
import sqlite3
import zipfile

import pytest

from judge.cli.failures import describe, safe


@pytest.mark.parametrize(("code", "fragment"), [
    (errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system"),
    (errno.ENOSPC, "no space left"), (errno.EDQUOT, "quota"), (errno.ENOTDIR, "a file where a folder"),
    (errno.EISDIR, "a folder where a file"), (errno.EIO, "input/output error"),
    (errno.EXDEV, "check the path"),  # no special advice: the system's words, then the hint
])
def test_os_errors_name_the_file_and_the_fix(code: int, fragment: str) -> None:
    line = describe(OSError(code, "system words", "/data/run/manifest.json"))
    assert line is not None and line.startswith("/data/run/manifest.json: ") and fragment in line


def test_sqlite_corrupt_zip_and_eof_are_lines_and_a_bug_is_not() -> None:
    assert "locked" in describe(sqlite3.OperationalError("database is locked"))
    assert "corrupt" in describe(sqlite3.DatabaseError("file is not a database"))
    assert ".npz file is corrupt" in describe(zipfile.BadZipFile("File is not a zip file"))
    assert "input ended early (Ran out of input)" in describe(EOFError("Ran out of input"))
    assert describe(KeyError("x")) is None and describe(AttributeError("y")) is None


def test_safe_keeps_one_printable_line() -> None:
    assert safe("a\nb\x1b[31m\tc") == "a b?[31m c"


def test_an_interrupt_raised_inside_an_asyncio_task_is_one_line() -> None:
    """SIGTERM can land while a grading task saves a judgment: the interrupt then leaves that task
    holding the exception, and asyncio would log it with a traceback when it is collected."""
    import subprocess
    import sys

    code = ("import asyncio\n"
            "from judge.cli import _interrupted\n"
            "async def save(): raise KeyboardInterrupt\n"
            "async def grade(): await asyncio.gather(save(), asyncio.sleep(1))\n"
            "try:\n    asyncio.run(grade())\n"
            "except KeyboardInterrupt:\n    _interrupted()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130
    assert proc.stderr.strip().splitlines() == [
        "judge: interrupted, rerun to continue (finished items are saved)"]
