"""Progress display for long stages: one rich bar per stage (items, rate, ETA) on the terminal.

A context manager yields ``advance(n, tokens=0)``; with ``enabled=False`` (tests, pipes) it is a
no-op, so stage code never branches on whether a terminal is attached. The bar is drawn on
`judge.logs.terminal()`, so it stays on screen while engine output is redirected to a log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from judge.logs import terminal

Advance = Callable[..., None]


@contextmanager
def stage_progress(label: str, total: int, *, enabled: bool = True) -> Iterator[Advance]:
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
