"""The Ray executor on a real local Ray instance (2 CPUs, small object store, no dashboard).

Fake workers (no model) pin the executor's promises: results written in order by this process,
specs side by side on separate workers, a `Shared` item stored once for every spec, a worker that
dies or hangs replaced (bounded), judge's own errors raised at once, a worker no node can hold
refused up front. Then real ones: `judge compare --executor ray --ray-address` (a separate driver
joining this instance) writes the run folder the local executor writes, and a generation worker
killed with SIGKILL in the middle of its work is replaced without changing one answer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install 'judge[ray]')")

from judge.errors import ExecutorError, RunFolderError  # noqa: E402
from judge.executors import RayExecutor, RaySettings, Shared, WorkSpec  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_instance():
    import signal

    import ray

    from judge.logs import engine_output

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    if ray.is_initialized():
        ray.shutdown()
    # the fake workers below live in this test module: Ray's workers get them by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with engine_output(Path(os.environ.get("TMPDIR", "/tmp")) / "judge-test-ray-logs", "ray"):
        ray.init(num_cpus=2, object_store_memory=100 * 1024 * 1024, include_dashboard=False,
                 log_to_driver=False, logging_level="WARNING")
    for sig, handler in handlers.items():  # ray.init sets its own; later tests expect the default
        signal.signal(sig, handler)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


# --------------------------------------------------------------------------- fake workers


class Echo:
    """Returns (item, pid, start, end) after ``delay`` seconds; with ``marker``, the first process
    to reach item ``trouble`` dies (``mode='die'``), hangs (``'hang'``) or raises (``'raise'``)."""

    def __init__(self, delay: float = 0.0, marker: str | None = None, trouble: object = None,
                 mode: str = "die"):
        self.delay, self.marker, self.trouble, self.mode = delay, marker, trouble, mode

    def __call__(self) -> Echo:
        if self.marker:
            with open(self.marker + ".loads", "a") as fh:
                fh.write(f"{os.getpid()}\n")
        return self

    def run(self, item: object) -> tuple[object, int, float, float]:
        t0 = time.time()
        if item == self.trouble and self.marker:
            first = not os.path.exists(self.marker)
            if self.mode == "raise-judge":
                raise RunFolderError("the run folder is not what the worker expected")
            if self.mode == "raise":
                raise RuntimeError(f"worker cannot handle {item}")
            if first:
                Path(self.marker).touch()
                if self.mode == "die":
                    os._exit(1)
                time.sleep(60)  # "hang"
        time.sleep(self.delay)
        return item, os.getpid(), t0, time.time()

    def close(self) -> None:
        return None


def spec(name: str, items: list, worker: Echo, written: list) -> WorkSpec:
    def on_result(i: int, value: tuple) -> tuple[int, int]:
        written.append((name, i, value[0]))
        return 1, 0

    return WorkSpec(name=name, worker=worker, items=items, on_result=on_result, total=len(items))


def executor(**kw: object) -> RayExecutor:
    return RayExecutor(RaySettings(poll_s=0.1, **kw))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the executor alone


def test_two_specs_run_side_by_side_and_results_are_written_in_order(ray_instance, tmp_path) -> None:
    written: list = []
    times: dict[str, list] = {"a": [], "b": []}

    def track(name: str):
        def on_result(i: int, value: tuple) -> tuple[int, int]:
            written.append((name, i, value[0]))
            times[name].append(value[1:])
            return 1, 0
        return on_result

    specs = [WorkSpec(name=n, worker=Echo(delay=0.6), items=[f"{n}{i}" for i in range(3)],
                      on_result=track(n), total=3) for n in ("a", "b")]
    ex = executor()
    ex.run(specs, label="t", progress=False)
    for n in ("a", "b"):
        assert [w for w in written if w[0] == n] == [(n, i, f"{n}{i}") for i in range(3)]
    pids = {n: {t[0] for t in times[n]} for n in times}
    assert len(pids["a"]) == 1 and len(pids["b"]) == 1 and pids["a"] != pids["b"]  # one worker each
    a_span = (min(t[1] for t in times["a"]), max(t[2] for t in times["a"]))
    b_span = (min(t[1] for t in times["b"]), max(t[2] for t in times["b"]))
    assert a_span[0] < b_span[1] and b_span[0] < a_span[1]  # their work overlapped in time


def test_replicas_share_a_specs_items_and_results_stay_in_order(ray_instance) -> None:
    written: list = []
    pids: dict[int, int] = {}

    def on_result(i: int, value: tuple) -> tuple[int, int]:
        written.append(value[0])
        pids[i] = value[1]
        return 1, 0

    ex = executor()
    ex.run([WorkSpec(name="a", worker=Echo(delay=0.2), items=list(range(6)), on_result=on_result,
                     total=6, replicas=2)], label="t", progress=False)
    assert written == list(range(6))
    assert len(set(pids.values())) == 2  # two workers ...
    assert {pids[0], pids[2], pids[4]} == {ex.workers["a"]["pid"]}  # ... item i on replica i mod 2
    assert {pids[1], pids[3], pids[5]} == {ex.workers["a #1"]["pid"]}


def test_a_shared_item_is_loaded_once_for_every_spec(ray_instance) -> None:
    loads: list[str] = []

    def load(key: str):
        return lambda: (loads.append(key), key.upper())[1]

    items = [Shared("x", load("x")), Shared("y", load("y"))]
    written: list = []
    executor().run([spec("a", items, Echo(), written), spec("b", items, Echo(), written)],
                   label="t", progress=False)
    assert sorted(loads) == ["x", "y"]
    assert sorted(written) == [("a", 0, "X"), ("a", 1, "Y"), ("b", 0, "X"), ("b", 1, "Y")]


def test_a_worker_that_dies_mid_item_is_replaced_and_nothing_changes(ray_instance, tmp_path) -> None:
    marker = str(tmp_path / "died")
    written: list = []
    ex = executor(max_retries=2)
    ex.run([spec("a", [1, 2, 3, 4], Echo(marker=marker, trouble=3), written)], label="t",
           progress=False)
    assert written == [("a", 0, 1), ("a", 1, 2), ("a", 2, 3), ("a", 3, 4)]  # each once, in order
    assert Path(marker).exists()  # the first worker did die at item 3
    assert len(Path(marker + ".loads").read_text().split()) == 2  # and one new worker took over


def test_a_hung_worker_is_killed_after_the_task_timeout_and_replaced(ray_instance, tmp_path) -> None:
    marker = str(tmp_path / "hung")
    written: list = []
    t0 = time.monotonic()
    executor(task_timeout_s=3.0).run(
        [spec("a", [1, 2], Echo(marker=marker, trouble=2, mode="hang"), written)], label="t",
        progress=False)
    assert written == [("a", 0, 1), ("a", 1, 2)]
    assert time.monotonic() - t0 < 50  # not the 60 s the hung worker would have slept
    assert len(Path(marker + ".loads").read_text().split()) == 2


def test_failures_are_bounded_then_one_line_that_keeps_what_was_written(ray_instance, tmp_path) -> None:
    marker = str(tmp_path / "raise")
    written: list = []
    with pytest.raises(ExecutorError) as err:
        executor(max_retries=1).run(
            [spec("generate compressed", [1, 2, 3, 4], Echo(marker=marker, trouble=3, mode="raise"),
                  written)], label="t", progress=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("generate compressed: failed on Ray 2 times")
    assert "RuntimeError: worker cannot handle 3" in msg
    assert "2 of 4 items were written" in msg and "rerun to continue" in msg
    assert written == [("generate compressed", 0, 1), ("generate compressed", 1, 2)]
    assert len(Path(marker + ".loads").read_text().split()) == 2  # 1 + max_retries workers


def test_judges_own_error_in_a_worker_is_raised_at_once(ray_instance, tmp_path) -> None:
    marker = str(tmp_path / "judge-error")
    with pytest.raises(RunFolderError, match="not what the worker expected"):
        executor(max_retries=3).run(
            [spec("a", [1, 2], Echo(marker=marker, trouble=1, mode="raise-judge"), [])], label="t",
            progress=False)
    assert len(Path(marker + ".loads").read_text().split()) == 1  # deterministic: not retried


def test_a_worker_no_node_can_hold_is_refused_up_front(ray_instance) -> None:
    with pytest.raises(ExecutorError, match=r"a: no node of the Ray cluster has 8 CPU\(s\)"):
        executor(cpus_per_worker=8).run([spec("a", [1], Echo(), [])], label="t", progress=False)


def test_an_address_where_nothing_listens_is_one_line_before_any_wait() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(ExecutorError, match=f"--ray-address 127.0.0.1:{port}: nothing answers"):
        RayExecutor(RaySettings(address=f"127.0.0.1:{port}")).check_address(timeout_s=5)
    assert time.monotonic() - t0 < 10
    with pytest.raises(ExecutorError, match="give host:port"):
        RayExecutor(RaySettings(address="no-port-here")).check_address()


def test_a_driver_without_the_clusters_token_gets_one_line_and_writes_nothing(ray_instance,
                                                                              tmp_path) -> None:
    """Ray clusters started here require token authentication; a driver that does not send the
    token (no RAY_AUTH_MODE=token) is refused by Ray under a generic ConnectionError."""
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"question_id": 1, "category": "math", "turns": ["1 + 1?"]}) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    proc = subprocess.run([sys.executable, "-m", "judge", "compare", "smollm2-135m", "smollm2-135m",
                           "-q", str(q), "--judge", "none", "--executor", "ray", "--ray-address",
                           ray_instance, "-r", str(tmp_path / "run"), "--no-progress"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "requires token authentication; export RAY_AUTH_MODE=token" in lines[0]
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- real models

QUESTIONS = [
    {"question_id": 1, "category": "math", "turns": ["What is 12 times 3?", "Add 4 to that."]},
    {"question_id": 2, "category": "writing", "turns": ["Write one sentence about rain.",
                                                          "Now make it rhyme."]},
    {"question_id": 3, "category": "stem", "turns": ["What is water made of?"]},
]


def _questions(tmp_path: Path) -> Path:
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    return path


def _answers(run: Path, role: str) -> list[tuple]:
    rows = [json.loads(line) for line in (run / "answers" / f"{role}.jsonl").read_text().splitlines()]
    return sorted((str(r["question_id"]), r["token_ids"], r["choices"][0]["turns"]) for r in rows)


def test_sigterm_during_a_ray_run_is_an_interrupt_that_keeps_finished_work(tmp_path) -> None:
    """ray.init installs its own SIGTERM handler (an immediate exit); judge keeps its own: SIGTERM
    while Ray workers generate ends the command with exit 130 and the interrupt line, workers and
    the command's own Ray instance stopped."""
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps({"question_id": i, "category": "writing",
                                     "turns": [f"Write a long story about the number {i}."]}) + "\n"
                         for i in range(1, 9)))
    run, cfg = tmp_path / "run", tmp_path / "run.toml"
    cfg.write_text('[engine]\nengine = "hf"\nchunk_size = 1\n')  # an answer written per question
    proc = subprocess.Popen([sys.executable, "-m", "judge", "compare", "smollm2-135m",
                             "smollm2-135m-int4", "-q", str(q), "--config", str(cfg), "--judge",
                             "none", "--max-new-tokens", "64", "--executor", "ray",
                             "--run", str(run), "--no-progress"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    answers = run / "answers" / "baseline.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if answers.is_file() and answers.read_text().count("\n") >= 1:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "judge: interrupted, rerun to continue" in err and "Traceback" not in err
    kept = answers.read_text().splitlines()
    assert 1 <= len(kept) < 8 and all(json.loads(line)["choices"] for line in kept)


def test_compare_on_ray_writes_what_the_local_executor_writes(ray_instance, tmp_path) -> None:
    """Same greedy answers, KL within float32 noise, the same scorecard numbers. float32: in
    bfloat16 a worker's other thread count alone moves small KLs by tens of percent."""
    q = _questions(tmp_path)
    common = ["compare", "smollm2-135m", "smollm2-135m-int4", "smollm2-135m-int8", "-q", str(q),
              "--judge", "none", "--engine", "hf", "--dtype", "float32", "--max-new-tokens", "16",
              "--no-progress"]
    runs = {}
    for kind, extra in (("local", []), ("ray", ["--executor", "ray", "--ray-address", ray_instance])):
        runs[kind] = tmp_path / kind
        proc = subprocess.run([sys.executable, "-m", "judge", *common, "--run", str(runs[kind]),
                               *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    assert "Token authentication" not in proc.stdout + proc.stderr  # Ray's lines: RUN/logs/ray.log
    roles = ["baseline", "compressed-smollm2-135m-int4", "compressed-smollm2-135m-int8"]
    for role in roles:
        assert _answers(runs["ray"], role) == _answers(runs["local"], role)
    cards = {k: json.loads((r / "scorecard.json").read_text()) for k, r in runs.items()}
    for role in roles[1:]:
        kl = {k: json.loads((r / "divergence" / f"{role}.summary.json").read_text())["overall"]
              for k, r in runs.items()}
        assert kl["ray"]["n_tokens"] == kl["local"]["n_tokens"] > 0
        assert kl["ray"]["kl_mean"] == pytest.approx(kl["local"]["kl_mean"], rel=1e-3, abs=1e-6)
        assert kl["ray"]["same_top1"] == pytest.approx(kl["local"]["same_top1"], abs=1e-9)
    sections = {k: {sec["role"]: sec for sec in c["sections"]} for k, c in cards.items()}
    assert set(sections["ray"]) == set(sections["local"]) == set(roles[1:])
    for role in roles[1:]:
        ray_b, local_b = sections["ray"][role]["behaviour"], sections["local"][role]["behaviour"]
        for key in ("status", "n_answers", "n_identical", "first_diff_median"):
            assert ray_b[key] == local_b[key], key
        assert ray_b["kl_mean"]["estimate"] == pytest.approx(local_b["kl_mean"]["estimate"],
                                                             rel=1e-3, abs=1e-6)
        assert sections["ray"][role]["n_flagged"] == sections["local"][role]["n_flagged"]


def test_data_parallel_generation_survives_a_killed_replica_and_no_answer_changes(
        ray_instance, tmp_path, base_model) -> None:
    from judge.config import EngineOptions, GenerationConfig
    from judge.generate import generate_all
    from judge.questions import load_questions
    from judge.store import Run

    qpath = tmp_path / "q.jsonl"
    qpath.write_text("".join(json.dumps({"question_id": i, "category": "writing",
                                         "turns": [f"Write a line about the number {i}."]}) + "\n"
                             for i in range(1, 6)), encoding="utf-8")
    info, questions = load_questions(str(qpath))
    opts = EngineOptions(engine="hf", dtype="float32", chunk_size=1, data_parallel_size=2)
    gen = GenerationConfig(max_new_tokens=24)
    ex = executor(max_retries=2)
    run = Run(tmp_path / "ray")
    killed: list[int] = []

    def kill_after_first_answer() -> None:
        path = run.answers_path("baseline")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            pid = ex.workers.get("generate baseline", {}).get("pid")
            if pid and path.is_file() and path.read_text().count("\n") >= 1:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_after_first_answer, daemon=True)
    killer.start()
    # two replicas of the model (data parallel); replica 0 is killed after the first answer
    generate_all(run, [("baseline", base_model, opts)], questions, info, gen=gen, progress=False,
                 executor=ex)
    killer.join(timeout=5)
    assert killed, "the worker was never seen"
    lines = run.answers_path("baseline").read_text().splitlines()
    assert sorted(json.loads(line)["question_id"] for line in lines) == [1, 2, 3, 4, 5]  # once each
    assert ex.workers["generate baseline"]["pid"] != killed[0]  # a new worker finished its share
    assert ex.workers["generate baseline #1"]["pid"] not in (killed[0],
                                                            ex.workers["generate baseline"]["pid"])
    local = Run(tmp_path / "local")
    generate_all(local, [("baseline", base_model, opts.model_copy(update={"data_parallel_size": 1}))],
                 questions, info, gen=gen, progress=False)
    assert _answers(run.root, "baseline") == _answers(local.root, "baseline")
