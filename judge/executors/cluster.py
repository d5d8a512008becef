"""The Ray executor: each spec's worker is a Ray actor; independent specs run side by side.

For every `WorkSpec` of a call the executor starts one actor asking for what the model needs (on a
cluster with GPUs: ``spec.gpus`` GPUs, its tensor-parallel size; on a CPU-only cluster:
``cpus_per_worker`` CPUs), builds the worker in it (``setup``: the model is loaded once), and queues
every item on it. Results come back here; ``spec.on_result`` writes them in item order, so this
process alone writes the run folder and resume and crash-safety are as with the local executor.
A `Shared` item (a baseline cache shard read by every candidate) is loaded and put into the object
store once.

Failures, bounded in this one place:

* a worker that dies (killed, out of memory, node lost), an exception other than judge's own in the
  worker, a worker not placed and loaded within ``start_timeout_s``, or one silent for
  ``task_timeout_s`` (hung): the actor is killed and a new one takes the spec's unfinished items,
  at most ``max_retries`` times per spec; then the spec fails with its last error in one line. What
  was written stays written; a rerun continues.
* one of judge's own errors raised in the worker (a bad checkpoint, a refused option) is
  deterministic: it is raised here at once, as the local executor would.

Every wait on Ray has a timeout (``ray.wait`` polls every ``poll_s``; ``ray.get`` of a result is
bounded). Ray's own output (the driver's, not the workers') goes to ``RUN/logs/ray.log``; each
worker's output stays in Ray's session logs (``ray logs``, or the dashboard).
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judge.errors import ExecutorError, JudgeError
from judge.executors.base import Shared, WorkSpec

RESULT_GET_TIMEOUT_S = 300.0  # a result already reported ready, fetched from the object store
CLOSE_TIMEOUT_S = 60.0
CLOSED = -2  # the item index of a worker's close call


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None  # None: start a local Ray instance (all of this machine)
    max_retries: int = 2  # new workers per spec after the first fails
    task_timeout_s: float = 3600.0  # a worker with no result for this long is hung
    start_timeout_s: float = 900.0  # placed on a node and model loaded within this
    cpus_per_worker: float = 1.0  # CPU-only clusters: CPUs each model's worker asks for
    num_cpus: int | None = None  # a local instance's CPUs (default: this machine's)
    poll_s: float = 0.5


class _Host:
    """The actor: holds one spec's worker (the model) between items."""

    def __init__(self, factory: Any):
        self.factory = factory
        self.worker: Any = None

    def setup(self) -> dict[str, Any]:
        import ray

        self.worker = self.factory()
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    def run(self, item: Any) -> Any:
        return self.worker.run(item)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None


@dataclass
class _Replica:
    """One worker of a spec (a spec with ``replicas`` > 1 is data parallel: item i goes to replica
    i mod replicas)."""

    index: int
    items: list[int]
    actor: Any = None
    generation: int = 0  # bumps with every new actor: results of an older one are ignored
    up: bool = False  # the current actor's worker is loaded
    since: float = 0.0  # when the current actor was asked for, or its last result came
    released: bool = False  # all its items are back; its worker asked to close
    closing_since: float | None = None  # close sent, actor not yet ended


@dataclass
class _State:
    """The driver's view of one spec on Ray."""

    spec: WorkSpec
    replicas: list[_Replica] = field(default_factory=list)
    failures: int = 0  # over all its replicas
    started: bool = False  # on_start has run
    next: int = 0  # the first item not yet written
    results: dict[int, Any] = field(default_factory=dict)  # back, waiting for an earlier item

    def __post_init__(self) -> None:
        n = max(1, min(self.spec.replicas, len(self.spec.items)))
        self.replicas = [_Replica(r, list(range(r, len(self.spec.items), n))) for r in range(n)]

    @property
    def done(self) -> bool:
        return self.next >= len(self.spec.items)

    def back(self, rep: _Replica) -> bool:
        return all(i < self.next or i in self.results for i in rep.items)


def label_of(states: list[_State]) -> str:
    return ", ".join(st.spec.name for st in states if not st.done)


def _auth_refused(err: BaseException) -> bool:
    """Whether Ray's connection error was a refused (or missing) authentication token; Ray puts
    that cause in the exception chain, under a generic ConnectionError."""
    seen: BaseException | None = err
    for _ in range(10):
        if seen is None:
            return False
        if "AuthenticationError" in type(seen).__name__ or "InvalidAuthToken" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}"[:300] if text else type(err).__name__


class RayExecutor:
    name = "ray"

    def __init__(self, settings: RaySettings = RaySettings()):
        self.settings = settings
        self._owns_ray = False
        self._refs: dict[str, Any] = {}  # Shared key -> object ref, for one run() call
        self.workers: dict[str, dict[str, Any]] = {}  # spec name -> pid, node of its current worker

    # ------------------------------------------------------------------ connection
    def check_address(self, timeout_s: float = 10.0) -> None:
        """A head given as host:port (or ray://host:port) must accept a connection now: Ray's own
        connect waits for minutes on an address where nothing listens."""
        address = self.settings.address
        if not address or address == "auto":
            return
        import socket

        hostport = address.removeprefix("ray://")
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise ExecutorError(f"--ray-address {address!r}: give host:port of the cluster's head "
                                "(e.g. 10.0.0.5:6379), ray://host:port, or 'auto'")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                pass
        except OSError as err:
            raise ExecutorError(f"--ray-address {address}: nothing answers there "
                                f"({err.strerror or err}); is the head started (`ray start "
                                "--head`)? check the host and port") from None

    def open(self) -> None:
        """The address answers, and the cluster is joined (or the local instance started) now:
        a refused token is one line before the run folder is touched. Ray's start-up lines go to
        a scratch log (the run's `logs/` may not exist yet)."""
        import tempfile

        from judge.logs import engine_output

        self.check_address()
        with tempfile.TemporaryDirectory(prefix="judge-ray-") as scratch, \
                engine_output(Path(scratch), "ray"):
            self.connect()

    def connect(self) -> None:
        """Join the cluster at ``address`` or start a local instance (once per process)."""
        import ray

        if ray.is_initialized():
            return
        s = self.settings
        common: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False,
                                  "logging_level": "WARNING"}
        import signal
        import threading

        # ray.init installs its own SIGTERM handler (sys.exit); judge's CLI turns SIGTERM into an
        # interrupt that saves finished items and exits 130: keep judge's
        main = threading.current_thread() is threading.main_thread()
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
        try:
            if s.address:
                import judge

                # the workers import this judge, whatever the cluster's image holds
                env = {"py_modules": [os.path.dirname(judge.__file__)]}
                ray.init(address=s.address, runtime_env=env, **common)
            else:
                ray.init(num_cpus=s.num_cpus, **common)
                self._owns_ray = True
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
            where = f"the Ray cluster at {s.address}" if s.address else "a local Ray instance"
            if _auth_refused(err):
                raise ExecutorError(
                    f"{where} refused this driver's token: it requires token authentication; "
                    "export RAY_AUTH_MODE=token with the cluster's token in RAY_AUTH_TOKEN or "
                    "~/.ray/auth_token (`ray get-auth-token` on the head)") from None
            raise ExecutorError(f"cannot start or join {where} ({_one_line(err)}); check "
                                "--ray-address (host:port of the head, or 'auto')") from None
        finally:
            for sig, handler in saved.items():
                if handler is not None:
                    signal.signal(sig, handler)

    def close(self) -> None:
        if self._owns_ray:
            import ray

            ray.shutdown()
            self._owns_ray = False

    # ------------------------------------------------------------------ running specs
    def run(self, specs: list[WorkSpec], *, label: str, progress: bool = True) -> None:
        from judge.progress import stage_progress

        states = [_State(s) for s in specs if s.items]
        if not states:
            return
        with ExitStack() as stack:
            log = next((s.log for s in specs if s.log is not None), None)
            if log is not None:
                from judge.logs import engine_output

                stack.enter_context(engine_output(log[0], "ray"))
            self.connect()
            self._check_fits(states)
            stack.callback(self._kill_all, states)  # on any exit: no worker outlives the call
            stack.callback(self._refs.clear)
            one = states[0].spec if len(states) == 1 else None
            n = sum(len(st.replicas) for st in states)
            bar_label = (one.label or one.name) if one and n == 1 else f"{label} on Ray ({n} workers)"
            with stage_progress(bar_label, total=sum(st.spec.total for st in states),
                                enabled=progress) as advance:
                self._loop(states, advance)

    def _resources(self, spec: WorkSpec) -> dict[str, float]:
        import ray

        if ray.cluster_resources().get("GPU", 0) > 0:
            return {"num_gpus": float(spec.gpus), "num_cpus": 1.0}
        return {"num_gpus": 0.0, "num_cpus": self.settings.cpus_per_worker}

    def _check_fits(self, states: list[_State]) -> None:
        """A worker no node of the cluster can hold is refused now, not after a timeout."""
        import ray

        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        for st in states:
            need = self._resources(st.spec)
            if not any(n.get("GPU", 0) >= need["num_gpus"] and n.get("CPU", 0) >= need["num_cpus"]
                       for n in nodes):
                what = (f"{need['num_gpus']:g} GPU(s)" if need["num_gpus"]
                        else f"{need['num_cpus']:g} CPU(s)")
                raise ExecutorError(f"{st.spec.name}: no node of the Ray cluster has {what} for "
                                    "one worker; lower --tensor-parallel-size or "
                                    "--ray-cpus-per-worker, or add a bigger node")

    def _arg(self, item: Any) -> Any:
        if not isinstance(item, Shared):
            return item
        import ray

        if item.key not in self._refs:  # loaded and stored once, read by every spec
            self._refs[item.key] = ray.put(item.load())
        return self._refs[item.key]

    def _start(self, st: _State, rep: _Replica, pending: dict[Any, tuple]) -> None:
        """A new actor for replica ``rep`` of ``st`` with its unfinished items queued on it."""
        import ray

        rep.generation += 1
        rep.up = False
        rep.since = time.monotonic()
        host = ray.remote(_Host).options(max_restarts=0, max_task_retries=0,
                                         **self._resources(st.spec))
        rep.actor = host.remote(st.spec.worker)
        pending[rep.actor.setup.remote()] = (st, rep, rep.generation, -1)
        for i in rep.items:
            if i >= st.next and i not in st.results:
                pending[rep.actor.run.remote(self._arg(st.spec.items[i]))] = (
                    st, rep, rep.generation, i)

    def _fail(self, st: _State, rep: _Replica, why: str, pending: dict[Any, tuple]) -> None:
        """Count a failure of a worker of ``st``: a new worker takes over, or the spec fails."""
        import ray

        st.failures += 1
        if rep.actor is not None:
            ray.kill(rep.actor, no_restart=True)
            rep.actor = None
        if st.failures > self.settings.max_retries:
            written = f"; {st.next} of {len(st.spec.items)} items were written and are kept"
            raise ExecutorError(f"{st.spec.name}: failed on Ray {st.failures} times, last: {why}"
                                f"{written}; rerun to continue (worker logs: `ray logs`)")
        self._start(st, rep, pending)

    def _loop(self, states: list[_State], advance: Any) -> None:
        import ray
        from ray.exceptions import GetTimeoutError, RayError, RayTaskError

        s = self.settings
        pending: dict[Any, tuple] = {}
        for st in states:
            for rep in st.replicas:
                self._start(st, rep, pending)
        while not all(st.done for st in states) or any(
                rep.closing_since is not None for st in states for rep in st.replicas):
            if not pending:  # cannot happen: every unfinished spec has a worker with its items
                raise ExecutorError(f"{label_of(states)}: nothing left to wait for on Ray")
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=s.poll_s)
            for ref in ready:
                st, rep, generation, i = pending.pop(ref)
                if i == CLOSED:  # its engine is shut down (or the worker died meanwhile): end it
                    self._end(rep)
                    continue
                if generation != rep.generation or rep.released:
                    continue  # from a worker already replaced
                try:
                    value = ray.get(ref, timeout=RESULT_GET_TIMEOUT_S)
                except RayTaskError as err:  # raised by judge's code in the worker
                    cause = getattr(err, "cause", None)
                    if isinstance(cause, JudgeError):
                        raise cause from None  # deterministic: a new worker would fail alike
                    self._fail(st, rep, _one_line(cause if isinstance(cause, BaseException)
                                                  else err), pending)
                    continue
                except (RayError, GetTimeoutError) as err:  # the worker or its node died
                    self._fail(st, rep, _one_line(err), pending)
                    continue
                rep.since = time.monotonic()
                if i < 0:
                    rep.up = True
                    name = st.spec.name + (f" #{rep.index}" if rep.index else "")
                    self.workers[name] = value
                    if not st.started:
                        st.started = True
                        st.spec.on_start()
                    continue
                st.results[i] = value
                while st.next in st.results:
                    n, tokens = st.spec.on_result(st.next, st.results.pop(st.next))
                    advance(n, tokens=tokens)
                    st.next += 1
                for other in st.replicas:  # all its items back: its CPUs or GPUs are free
                    if not other.released and st.back(other):
                        self._release(other, pending)
                if st.done:
                    st.spec.on_done()
            now = time.monotonic()
            for st in states:
                for rep in st.replicas:
                    if rep.closing_since is not None and now - rep.closing_since > CLOSE_TIMEOUT_S:
                        self._end(rep)  # a close that hangs: the actor is killed all the same
                    if rep.released or st.back(rep):
                        continue
                    if not rep.up and now - rep.since > s.start_timeout_s:
                        self._fail(st, rep, f"not placed and loaded within {s.start_timeout_s:g} s",
                                   pending)
                    elif rep.up and now - rep.since > s.task_timeout_s:
                        self._fail(st, rep, f"no result for {s.task_timeout_s:g} s (hung)", pending)

    def _release(self, rep: _Replica, pending: dict[Any, tuple]) -> None:
        """A worker whose items are all back: ask it to close (engine shut down) without waiting;
        the actor ends when the close returns or `CLOSE_TIMEOUT_S` passes."""
        rep.released = True
        if rep.actor is None:
            return
        rep.closing_since = time.monotonic()
        pending[rep.actor.close.remote()] = (None, rep, rep.generation, CLOSED)

    def _end(self, rep: _Replica) -> None:
        import ray

        rep.closing_since = None
        if rep.actor is not None:
            ray.kill(rep.actor, no_restart=True)
            rep.actor = None

    def _kill_all(self, states: list[_State]) -> None:
        import ray

        for st in states:
            for rep in st.replicas:
                if rep.actor is not None:
                    ray.kill(rep.actor, no_restart=True)
                    rep.actor = None
