"""Progress of long stages: one rich bar per stage (items, rate, ETA) on the terminal, and a
machine-readable progress file for `judge serve`.

A context manager yields ``advance(n, tokens=0)``; with ``enabled=False`` (tests, pipes) the bar is
not drawn, so stage code never branches on whether a terminal is attached. The bar is drawn on
`judge.logs.terminal()`, so it stays on screen while engine output is redirected to a log.

When ``$JUDGE_PROGRESS_FILE`` is set (the service sets it for each job's child process), every
stage also appends JSON lines ``{"t", "stage", "done", "total", "tokens", "state"}`` to that file:
one when the stage starts, at most one per `PROGRESS_EVERY_S` while it advances, one when it ends.
The service derives per-stage progress, rate and ETA from them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from judge.logs import terminal

Advance = Callable[..., None]
PROGRESS_ENV = "JUDGE_PROGRESS_FILE"
PROGRESS_EVERY_S = 0.5


class _ProgressFile:
    """Appends one stage's progress lines to ``$JUDGE_PROGRESS_FILE`` (whole lines, flushed)."""

    def __init__(self, path: str, stage: str, total: int):
        self.path, self.stage, self.total = path, stage, total
        self.done = self.tokens = 0
        self.last = 0.0
        self.write("start")

    def write(self, state: str) -> None:
        self.last = time.time()
        line = json.dumps({"t": round(self.last, 3), "stage": self.stage, "done": self.done,
                           "total": self.total, "tokens": self.tokens, "state": state})
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
        finally:
            os.close(fd)

    def advance(self, n: int, tokens: int) -> None:
        self.done += n
        self.tokens += tokens
        if time.time() - self.last >= PROGRESS_EVERY_S or self.done >= self.total:
            self.write("run")


@contextmanager
def stage_progress(label: str, total: int, *, enabled: bool = True) -> Iterator[Advance]:
    path = os.environ.get(PROGRESS_ENV)
    pfile = _ProgressFile(path, label, total) if path else None
    try:
        with _bar(label, total, enabled) as bar:
            def advance(n: int = 1, tokens: int = 0, **_: object) -> None:
                bar(n, tokens=tokens)
                if pfile is not None:
                    pfile.advance(n, tokens)

            yield advance
    finally:
        if pfile is not None:
            pfile.write("end")


@contextmanager
def _bar(label: str, total: int, enabled: bool) -> Iterator[Advance]:
    if not enabled:
        yield lambda n=1, **_: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
               TimeRemainingColumn()]
    with Progress(*columns, console=Console(file=terminal()), transient=False) as prog:
        task = prog.add_task(label, total=total, rate="")
        state = {"tokens": 0}

        def advance(n: int = 1, tokens: int = 0) -> None:
            state["tokens"] += tokens
            elapsed = prog.tasks[task].elapsed or 0.0
            rate = f"{state['tokens'] / elapsed:.1f} tok/s" if state["tokens"] and elapsed else ""
            prog.update(task, advance=n, rate=rate)

        yield advance
