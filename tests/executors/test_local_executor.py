"""The local executor through the seam: a fake worker, no model. Order of writes, the callbacks'
order, the worker closed on every exit, `Shared` items loaded when their item runs."""

from __future__ import annotations

import pytest

from judge.executors import LocalExecutor, Shared, WorkSpec


class Squares:
    """A worker: squares numbers; records what it did in a shared list."""

    def __init__(self, log: list, fail_at: int | None = None):
        self.log, self.fail_at = log, fail_at
        log.append("load")

    def run(self, item: int) -> int:
        if item == self.fail_at:
            raise RuntimeError(f"cannot square {item}")
        self.log.append(f"run {item}")
        return item * item

    def close(self) -> None:
        self.log.append("close")


def spec(name: str, items: list, log: list, written: list, fail_at: int | None = None) -> WorkSpec:
    def on_result(i: int, value: int) -> tuple[int, int]:
        written.append((name, i, value))
        log.append(f"write {i}")
        return 1, value

    return WorkSpec(name=name, worker=lambda: Squares(log, fail_at), items=items,
                    on_result=on_result, total=len(items),
                    on_start=lambda: log.append("start"), on_done=lambda: log.append("done"))


def test_specs_run_one_after_another_each_item_written_before_the_next_runs() -> None:
    log: list = []
    written: list = []
    LocalExecutor().run([spec("a", [1, 2, 3], log, written), spec("b", [4], log, written)],
                        label="t", progress=False)
    assert written == [("a", 0, 1), ("a", 1, 4), ("a", 2, 9), ("b", 0, 16)]
    assert log == ["load", "start", "run 1", "write 0", "run 2", "write 1", "run 3", "write 2",
                   "done", "close", "load", "start", "run 4", "write 0", "done", "close"]


def test_a_failing_item_keeps_what_was_written_and_closes_the_worker() -> None:
    log: list = []
    written: list = []
    with pytest.raises(RuntimeError, match="cannot square 3"):
        LocalExecutor().run([spec("a", [1, 2, 3, 4], log, written, fail_at=3)], label="t",
                            progress=False)
    assert written == [("a", 0, 1), ("a", 1, 4)]
    assert log[-1] == "close" and "done" not in log


def test_a_spec_without_items_loads_nothing() -> None:
    log: list = []
    LocalExecutor().run([spec("a", [], log, [])], label="t", progress=False)
    assert log == []


def test_shared_items_are_loaded_when_their_item_runs() -> None:
    log: list = []
    written: list = []
    loads: list = []

    def load(v: int):
        return lambda: (loads.append(v), log.append(f"load item {v}"))[1] or v

    items = [Shared("x", load(5)), Shared("y", load(6))]
    LocalExecutor().run([spec("a", items, log, written)], label="t", progress=False)
    assert written == [("a", 0, 25), ("a", 1, 36)]
    assert log.index("load item 6") > log.index("write 0")  # lazily: not all read up front


def test_data_parallel_needs_the_ray_executor(tmp_path) -> None:
    from judge.config import EngineOptions
    from judge.errors import ConfigError
    from judge.generate import generate_all
    from judge.schemas import ModelInfo, QuestionSetInfo
    from judge.store import Run

    run = Run(tmp_path / "run")
    model = ModelInfo(spec="m", name="m", path=str(tmp_path))
    info = QuestionSetInfo(name="q", path="q.jsonl", sha256="0" * 64, n_questions=1,
                           categories={"math": 1})
    with pytest.raises(ConfigError, match="--data-parallel-size 2 needs --executor ray"):
        generate_all(run, [("baseline", model, EngineOptions(data_parallel_size=2))], [], info)
    assert not run.root.exists()
