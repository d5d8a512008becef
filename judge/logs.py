"""Where output goes: judge's own lines to the terminal, every other program's to ``RUN/logs/``.

Engines and libraries (vLLM and its engine-core and worker processes, transformers, torch, triton,
their warnings and progress bars) write to file descriptors 1 and 2, often from child processes
that Python cannot reach. `engine_output` therefore redirects the descriptors themselves, for this
process and every process it starts, to ``RUN/logs/<stage>-<role>.log`` (appended), while
`terminal()` stays bound to a copy of the real stderr: judge's progress bars and lines keep the
terminal. With `set_verbose(True)` (``--verbose``) the log is also streamed to the terminal as it
grows. An `EngineError` raised inside gets the log's path added to its one line, and any other
exception's traceback is appended to the log.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from judge.errors import EngineError, JudgeError

class _State:
    verbose = False
    terminal: TextIO | None = None  # a copy of the real stderr while output is redirected


_lock = threading.Lock()


def set_verbose(verbose: bool) -> None:
    """Also stream engine logs to the terminal (``--verbose``)."""
    _State.verbose = bool(verbose)


def verbose() -> bool:
    return _State.verbose


def terminal() -> TextIO:
    """The real stderr: inside `engine_output` a copy of it made before the redirect, else sys.stderr."""
    return _State.terminal if _State.terminal is not None else sys.stderr


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing to save
            pass


class _Tail(threading.Thread):
    """Copies what is appended to a log file onto the terminal until stopped (``--verbose``)."""

    def __init__(self, path: Path, start: int, out: TextIO):
        super().__init__(name="judge-log-tail", daemon=True)
        self._path, self._pos, self._out = path, start, out
        self._stop_event = threading.Event()

    def _copy(self) -> None:
        with open(self._path, "rb") as fh:
            fh.seek(self._pos)
            data = fh.read()
        if data:
            self._pos += len(data)
            self._out.write(data.decode("utf-8", errors="replace"))
            self._out.flush()

    def run(self) -> None:
        while not self._stop_event.wait(0.2):
            self._copy()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        self._copy()  # what was written last


@contextmanager
def engine_output(logs_dir: Path, name: str) -> Iterator[Path]:
    """Inside the block, descriptors 1 and 2 append to ``logs_dir/<name>.log``; yields that path.

    Nested blocks switch to their own log and restore the outer one on exit. Child processes
    started inside keep writing to the log they inherited, even after the block ends. A block in
    which nothing was written leaves no trace: its header is taken back, and a log file or
    ``logs/`` folder it created is removed (a refused command must not change the run folder).
    """
    dir_existed = logs_dir.is_dir()
    logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = logs_dir / f"{name}.log"
    existed = log_path.exists()
    _flush_std()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    start = os.fstat(log_fd).st_size
    saved = (os.dup(1), os.dup(2))
    with _lock:
        outermost = _State.terminal is None
        if outermost:  # judge's own console: a copy of the real stderr, line-buffered
            _State.terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8",
                                        errors="replace")
    tail: _Tail | None = None
    after_header: int | None = None
    try:
        os.write(log_fd, f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} judge: {name}\n".encode())
        after_header = os.fstat(log_fd).st_size
        if verbose():
            tail = _Tail(log_path, os.lseek(log_fd, 0, os.SEEK_END), terminal())
            tail.start()
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        yield log_path
    except EngineError as err:
        if "(log: " not in err.message and os.fstat(log_fd).st_size != after_header:
            raise EngineError(f"{err.message} (log: {log_path})", path=err.path, line=err.line) from err
        raise
    except JudgeError:
        raise
    except Exception:
        # a traceback a user may need, kept out of the terminal: the CLI prints one line
        os.write(log_fd, traceback.format_exc().encode("utf-8", errors="replace"))
        raise
    finally:
        _flush_std()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        if tail is not None:
            tail.stop()
        _take_back_if_silent(log_fd, log_path, start, existed, dir_existed, after_header)
        for fd in (*saved, log_fd):
            os.close(fd)
        if outermost:
            with _lock:
                term, _State.terminal = _State.terminal, None
            if term is not None:
                try:
                    term.close()
                except OSError:  # the terminal went away: nothing left to say there
                    pass


def _take_back_if_silent(log_fd: int, log_path: Path, start: int, existed: bool, dir_existed: bool,
                         after_header: int | None) -> None:
    """Undo the header of a block nobody wrote to, so the run folder is as it was before."""
    if after_header is not None and os.fstat(log_fd).st_size != after_header:
        return  # somebody wrote: keep it
    if existed:
        os.truncate(log_path, start)
        return
    log_path.unlink(missing_ok=True)
    if not dir_existed:
        try:
            log_path.parent.rmdir()
        except OSError:  # another file appeared in it meanwhile (a judge-server log): keep it
            pass
