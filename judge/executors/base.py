"""The executor seam: how a stage's model work runs, while the stage alone writes the run folder.

A stage describes its model work as `WorkSpec`s: a picklable `worker` factory (loads a model once,
in whatever process the executor chooses), the items to push through it (question chunks, cache
shards), and driver-side callbacks. The executor calls ``spec.on_result(index, result)`` in this
process, in item order, for every item; that callback is the only code that writes (answers
appended, a cache shard or a part saved), so resume and crash-safety are the same on every
executor: what was written is whole, and a rerun skips it.

Two implementations: `judge.executors.local.LocalExecutor` (today's behaviour: one spec after
another, in this process) and `judge.executors.cluster.RayExecutor` (each spec an actor on a Ray
cluster asking for the resources it needs; independent specs run side by side).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Worker(Protocol):
    """What a spec's factory returns, in the worker's process: the model loaded."""

    def run(self, item: Any) -> Any:
        """One item's result (rows for the driver to write; no file is written here)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Shared:
    """An item several specs read (a baseline cache shard): ``load`` runs in this process at most
    once per executor run and per ``key``; on Ray the value goes into the object store once."""

    key: str
    load: Callable[[], Any]


@dataclass
class WorkSpec:
    """One model's work in one stage.

    ``worker`` is called once per worker process (it must pickle: a module-level class or
    function, for Ray); ``on_result(i, result)`` runs here in order of ``i`` and returns the units
    to advance the progress (items, tokens). ``on_start`` runs here once the worker is up, before
    the first result is handled; ``on_done`` after the last. ``gpus`` is what the model needs on a
    GPU cluster (its tensor-parallel size); ``replicas`` > 1 spreads the items over that many
    workers (data parallel; the local executor has one); ``log`` names ``RUN/logs/<name>.log`` for the local
    executor (Ray keeps a worker's output in its own logs).
    """

    name: str
    worker: Callable[[], Worker]
    items: list[Any]
    on_result: Callable[[int, Any], tuple[int, int]]
    total: int  # progress units of the whole spec (questions, sequences)
    on_start: Callable[[], None] = lambda: None
    on_done: Callable[[], None] = lambda: None
    gpus: int = 1
    replicas: int = 1  # data parallel: workers sharing the items (Ray; local runs one)
    log: tuple[Path, str] | None = None
    label: str = ""  # the progress bar's label; default: name
    extra: dict[str, Any] = field(default_factory=dict)  # what a worker reports back (pid, node)


class Executor(Protocol):
    name: str  # "local" | "ray"

    def open(self) -> None:
        """Reach what the work will run on (a cluster), or raise one line, before any write."""
        ...

    def run(self, specs: list[WorkSpec], *, label: str, progress: bool = True) -> None:
        """Run every spec to its end (``on_result`` called for every item) or raise."""
        ...

    def close(self) -> None: ...


def resolve_item(item: Any) -> Any:
    """An item's value in this process (a `Shared` item loaded)."""
    return item.load() if isinstance(item, Shared) else item
