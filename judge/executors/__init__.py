"""Executors: where the stages' model work runs (`judge.executors.base` has the seam).

``local`` (the default) runs it in this process, one model after another; ``ray`` runs each model's
worker as a Ray actor on a cluster (`pip install 'judge[ray]'`). Other stages call only what is
named here; Ray itself is imported only when a Ray executor connects.
"""

from __future__ import annotations

from judge.executors.base import Executor, Shared, Worker, WorkSpec
from judge.executors.cluster import RayExecutor, RaySettings
from judge.executors.local import LocalExecutor


def make_executor(kind: str, settings: RaySettings | None = None) -> Executor:
    """``local`` or ``ray`` (the latter refused in one line where Ray is not installed)."""
    if kind == "local":
        return LocalExecutor()
    import importlib.util

    from judge.errors import ExecutorError

    if importlib.util.find_spec("ray") is None:
        raise ExecutorError("--executor ray needs Ray: pip install 'judge[ray]'")
    return RayExecutor(settings or RaySettings())


__all__ = ["Executor", "LocalExecutor", "RayExecutor", "RaySettings", "Shared", "Worker", "WorkSpec",
           "make_executor"]
