"""The local executor: every spec in this process, one after another (one model in memory at a time).

This is judge's behaviour without a cluster: a spec's worker is built here, inside the spec's
``RUN/logs/<name>.log`` redirect, its items run in order and each result is written (``on_result``)
before the next item starts, so an interrupt loses at most the item in progress.
"""

from __future__ import annotations

from contextlib import ExitStack

from judge.executors.base import WorkSpec, resolve_item


class LocalExecutor:
    name = "local"

    def open(self) -> None:
        return None  # nothing to reach

    def run(self, specs: list[WorkSpec], *, label: str, progress: bool = True) -> None:
        from judge.progress import stage_progress

        for spec in specs:
            if not spec.items:
                continue
            with ExitStack() as stack:
                if spec.log is not None:
                    from judge.logs import engine_output

                    stack.enter_context(engine_output(*spec.log))
                worker = spec.worker()
                stack.callback(worker.close)
                spec.on_start()
                advance = stack.enter_context(
                    stage_progress(spec.label or spec.name, total=spec.total, enabled=progress))
                for i, item in enumerate(spec.items):
                    n, tokens = spec.on_result(i, worker.run(resolve_item(item)))
                    advance(n, tokens=tokens)
                spec.on_done()

    def close(self) -> None:
        return None
