"""Reliability 2: crashes. For each stage (generate, diverge, grade), seeded trials start the real
CLI (``python -m judge ...``), SIGKILL it at a random moment, check what the kill left, rerun the
same command to completion and compare with an uninterrupted reference run.

After every kill, before the rerun:
  * every JSONL file parses with judge's reader, and no line but a final unterminated one (a torn
    tail, which the reader skips and the next append cuts off) is anything but one whole JSON object;
  * the manifest loads (it is replaced atomically);
  * caches hold no half-written entry: each divergence cache shard / part loads whole, the header
    parses, and the judge cache passes SQLite's integrity check with every stored verdict valid.
After the rerun, the outputs equal the reference's (answers ignoring ``answer_id``/``tstamp``;
divergence rows, per-token arrays and summary ignoring time and folder; judgments ignoring
``tstamp``/``usage``/``attempts``), with exactly one answer per question and one judgment per key.

Workloads are tiny (the embedded smollm2-135m and -int4, 2 questions x 2 turns, 8 new tokens,
``--engine hf``, float32, one thread) and two trials run at a time. Set
``JUDGE_RELIABILITY_FIGURES=DIR`` to get the figures as ``DIR/crash-<stage>.json``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from fake_openai import FakeOpenAIServer
from reliability_support import (cli_env, has_torn_tail, jsonl_files, judge_cmd, synthetic_run,
                                 torn_lines, write_questions)

from judge.schemas import Answer, PairJudgment, ProbeJudgment, SingleJudgment
from judge.store import Run, read_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # bounded even on a slow machine

TRIALS = int(os.environ.get("JUDGE_CRASH_TRIALS", "10"))
PARALLEL = 2
GEN_FLAGS = ["--engine", "hf", "--dtype", "float32", "--max-new-tokens", "8", "--batch-size", "1",
             "--chunk-size", "1", "--no-progress"]


# --------------------------------------------------------------------------- the harness


@dataclass
class Trial:
    index: int
    kill_at_s: float
    killed: bool = False  # False: it finished before the kill moment
    state: dict[str, int] = field(default_factory=dict)  # what the kill left (lines per file...)
    torn_tails: int = 0
    problems: list[str] = field(default_factory=list)
    rerun_equal: bool = False
    extra: dict[str, int] = field(default_factory=dict)


def run_to_end(args: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.monotonic()
    out = subprocess.run(judge_cmd(*args), env=env, cwd=cwd, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return time.monotonic() - t0


def stage_outputs(work: Path) -> dict[Path, int]:
    """Files a stage writes (not the manifest, nor temporary files) and their modification times."""
    return {p: p.stat().st_mtime_ns for p in work.rglob("*")
            if p.is_file() and not p.name.startswith((".", "manifest"))}


def run_and_kill(args: list[str], env: dict[str, str], cwd: Path, delay_s: float,
                 after_first_output: Path | None = None) -> bool:
    """Start the command, SIGKILL its process group ``delay_s`` after its start (or after it first
    changed a stage output under ``after_first_output``); True if it was killed."""
    before = stage_outputs(after_first_output) if after_first_output is not None else None
    proc = subprocess.Popen(judge_cmd(*args), env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if after_first_output is not None:
            while proc.poll() is None and stage_outputs(after_first_output) == before:
                time.sleep(0.02)
        proc.wait(timeout=delay_s)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        return True


def check_after_kill(run_root: Path, trial: Trial) -> None:
    """What a kill may leave: whole lines, a torn tail at most, whole cache entries, a manifest."""
    for path in jsonl_files(run_root):
        trial.problems += torn_lines(path)
        trial.torn_tails += has_torn_tail(path)
        trial.state[str(path.relative_to(run_root))] = path.read_bytes().count(b"\n")
    try:
        Run(run_root).load_manifest()
    except Exception as err:  # noqa: BLE001 - any failure is the finding
        trial.problems.append(f"manifest: {err}")
    for npz in sorted(run_root.rglob("*.npz")):  # divergence cache shards and parts, token arrays
        try:
            with np.load(npz, allow_pickle=False) as z:
                for name in z.files:
                    z[name]
        except Exception as err:  # noqa: BLE001
            trial.problems.append(f"{npz}: half-written ({err})")
    for header in run_root.rglob("header.json"):
        try:
            json.loads(header.read_text(encoding="utf-8"))
        except ValueError as err:
            trial.problems.append(f"{header}: {err}")
    cache = run_root / "judge_cache.sqlite"
    if cache.exists():
        trial.problems += judge_cache_problems(cache)
    trial.state["tmp_files"] = sum(1 for p in run_root.rglob("*.tmp*"))


def judge_cache_problems(path: Path) -> list[str]:
    from judge import schemas

    db = sqlite3.connect(path)
    try:
        problems = [] if db.execute("PRAGMA integrity_check").fetchone()[0] == "ok" else [
            f"{path}: integrity check failed"]
        for schema_name, raw, verdict_json in db.execute(
                "SELECT schema_name, raw, verdict_json FROM responses"):
            try:
                getattr(schemas, schema_name).model_validate_json(verdict_json)
            except Exception as err:  # noqa: BLE001
                problems.append(f"{path}: a cached verdict does not validate ({err})")
            if not raw:
                problems.append(f"{path}: a cached entry has no reply text")
    finally:
        db.close()
    return problems


def crash_trials(stage: str, prepare: Callable[[Path], None], args_for: Callable[[Path], list[str]],
                 outputs: Callable[[Path], object], progress: Callable[[Path], int],
                 env: dict[str, str], base: Path, window: tuple[float, float] | None = None
                 ) -> tuple[list[Trial], dict[str, object]]:
    """Reference run, then `TRIALS` kill-and-rerun trials; returns the trials and figures.

    Kill moments: half of the trials uniform over the reference's whole duration, half over
    ``window`` (seconds; where the stage writes), when given. ``progress(work)`` counts the
    finished items a folder holds (answers, cache shards, judgments), to show where kills landed.
    """
    ref_dir = base / "reference"
    prepare(ref_dir)
    ref_s = run_to_end(args_for(ref_dir), env, base)
    expected = outputs(ref_dir)

    def one(i: int) -> Trial:
        rng = random.Random(f"{stage}-{i}")
        work = base / f"trial-{i}"
        prepare(work)
        if window is not None and i % 2:  # after the first output appears, within the write window
            trial = Trial(i, round(rng.uniform(0.0, window[1] - window[0]), 3))
            trial.killed = run_and_kill(args_for(work), env, base, trial.kill_at_s,
                                        after_first_output=work)
        else:  # anywhere in the run
            trial = Trial(i, round(rng.uniform(0.0, ref_s), 3))
            trial.killed = run_and_kill(args_for(work), env, base, trial.kill_at_s)
        check_after_kill(work / "run" if (work / "run").is_dir() else work, trial)
        trial.extra["progress"] = progress(work)
        run_to_end(args_for(work), env, base)
        got = outputs(work)
        trial.rerun_equal = got == expected
        if not trial.rerun_equal:
            trial.extra["difference"] = first_difference(expected, got)  # type: ignore[assignment]
        return trial

    t0 = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        trials = list(pool.map(one, range(TRIALS)))
    figures = {
        "stage": stage, "trials": len(trials), "reference_s": round(ref_s, 1),
        "trials_wall_s": round(time.monotonic() - t0, 1),
        "killed": sum(t.killed for t in trials),
        "finished_items_in_reference": progress(ref_dir),
        "finished_items_after_each_kill": [t.extra["progress"] for t in trials],
        "killed_with_partial_output": sum(t.killed and 0 < t.extra["progress"] < progress(ref_dir)
                                          for t in trials),
        "torn_tails_left_by_kills": sum(t.torn_tails for t in trials),
        "mid_file_torn_lines_or_half_written_entries": sum(len(t.problems) for t in trials),
        "reruns_equal_to_reference": sum(t.rerun_equal for t in trials),
        "kill_moments_s": [t.kill_at_s for t in trials],
        "kill_anchor": "odd trials: after the first stage output appeared" if window else "start",
        "differences": {t.index: t.extra["difference"] for t in trials if not t.rerun_equal},
        "states_after_kill": [t.state for t in trials],
    }
    return trials, figures


def torn_write_trial(base: Path, relpath: str, args_for: Callable[[Path], list[str]],
                     outputs: Callable[[Path], object], env: dict[str, str]) -> bool:
    """A kill in the middle of a write, made exact: the reference's ``relpath`` loses the second
    half of its last line. The reader must skip the torn tail, the rerun must redo that item and
    end equal to the reference. (Random kills rarely land inside a write of a few hundred bytes.)"""
    work = base / "torn"
    shutil.copytree(base / "reference", work)
    path = work / "run" / relpath
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: start + (len(data) - start) // 2])
    assert torn_lines(path) == [] and has_torn_tail(path)
    run_to_end(args_for(work), env, base)
    assert not has_torn_tail(path)
    return outputs(work) == outputs(base / "reference")


def report(figures: dict[str, object]) -> None:
    print(f"\ncrash trials ({figures['stage']}):",
          json.dumps({k: v for k, v in figures.items() if k != "states_after_kill"}))
    out = os.environ.get("JUDGE_RELIABILITY_FIGURES")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"crash-{figures['stage']}.json").write_text(json.dumps(figures, indent=1) + "\n")


def first_difference(a: object, b: object, where: str = "") -> str:
    """Where two nested values first differ, for the report of a failed trial."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return first_difference(a.get(k), b.get(k), f"{where}.{k}")
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{where}[{i}]")
    return f"{where}: {str(a)[:200]!r} != {str(b)[:200]!r}"


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def assert_trials(trials: list[Trial]) -> None:
    assert [p for t in trials for p in t.problems] == []
    assert all(t.rerun_equal for t in trials), [t.index for t in trials if not t.rerun_equal]
    assert len(trials) >= 10 or TRIALS < 10


# --------------------------------------------------------------------------- normalised outputs


def answers_of(run_root: Path) -> dict[str, list[dict]]:
    out = {}
    for path in sorted((run_root / "answers").glob("*.jsonl")):
        rows = read_jsonl(path, Answer)
        assert len({a.key for a in rows}) == len(rows), f"{path}: a question answered twice"
        out[path.stem] = sorted((a.model_dump(exclude={"answer_id", "tstamp"}) for a in rows),
                                key=lambda d: str(d["question_id"]))
    return out


def manifest_of(run_root: Path) -> dict:
    m = Run(run_root).load_manifest()
    assert m is not None
    return m.model_dump(exclude={"created", "updated", "stages"})


def divergence_of(run_root: Path) -> dict:
    d = run_root / "divergence"
    rows = [json.loads(line) for line in (d / "compressed.jsonl").read_text().splitlines()]
    summary = json.loads((d / "compressed.summary.json").read_text())
    summary.pop("seconds", None)
    for key in ("path", "bytes", "bytes_per_token", "times_smaller_than_llama_cpp"):
        # the folder, and sizes that move by a byte with the length of header.json's timestamp
        summary.get("cache", {}).pop(key, None)
    with np.load(d / "compressed.tokens.npz", allow_pickle=False) as z:
        arrays = {k: z[k].tolist() for k in z.files}
    return {"rows": rows, "summary": summary, "arrays": arrays, "answers": answers_of(run_root)}


def judgments_of(run_root: Path) -> dict:
    drop = {"tstamp", "usage", "attempts"}
    single = read_jsonl(run_root / "judgments" / "single.jsonl", SingleJudgment)
    pairs = read_jsonl(run_root / "judgments" / "pairwise.jsonl", PairJudgment)
    s_keys = [(r.role, str(r.question_id), r.turn) for r in single]
    p_keys = [(r.role_2, str(r.question_id), r.turn) for r in pairs]
    assert len(set(s_keys)) == len(s_keys) and len(set(p_keys)) == len(p_keys), "a judgment twice"
    games = lambda r: [g.model_dump(exclude={"usage", "attempts"}) for g in r.games or []]  # noqa: E731
    probes_path = run_root / "judgments" / "probes.jsonl"
    probes = read_jsonl(probes_path, ProbeJudgment) if probes_path.exists() else []
    ids = [r.probe.probe_id for r in probes]
    assert len(set(ids)) == len(ids), "a probe judged twice"

    def strip(obj: object) -> object:  # the self-test rows nest judgments: drop times and costs
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in drop}
        return [strip(v) for v in obj] if isinstance(obj, list) else obj

    return {
        "single": sorted((json.dumps(r.model_dump(exclude=drop), sort_keys=True) for r in single)),
        "pairs": sorted((json.dumps({**r.model_dump(exclude=drop | {"games"}), "games": games(r)},
                                    sort_keys=True) for r in pairs)),
        "probes": sorted(json.dumps(strip(r.model_dump()), sort_keys=True) for r in probes),
    }


# --------------------------------------------------------------------------- the stages


@pytest.fixture(scope="module")
def crash_env(tmp_path_factory: pytest.TempPathFactory, base_model, int4_model) -> dict[str, str]:
    """Both embedded models built once (session fixtures) before any subprocess needs them."""
    return cli_env()


@pytest.fixture(scope="module")
def two_questions_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("q") / "q2.jsonl"
    rows = [{"question_id": 1, "category": "writing",
             "turns": ["Name a colour of the sky.", "Now name a different one."]},
            {"question_id": 2, "category": "math", "turns": ["What is 2 + 3?", "Multiply that by 4."],
             "reference": ["5", "20"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_window(args_for: Callable[[Path], list[str]], env: dict[str, str], base: Path,
                 prepare: Callable[[Path], None]) -> tuple[float, float]:
    """(a second before a probe run first changed a stage output -- any file but the manifest --,
    the end of the probe run), in seconds from its start: where kills leave partial outputs."""
    probe = base / "probe"
    prepare(probe)

    def outputs() -> dict[Path, int]:
        return stage_outputs(probe)

    before = outputs()
    t0 = time.monotonic()
    proc = subprocess.Popen(judge_cmd(*args_for(probe)), env=env, cwd=base,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = None
    while proc.poll() is None and first is None:
        if outputs() != before:
            first = time.monotonic() - t0
        time.sleep(0.05)
    assert proc.wait(timeout=900) == 0
    end = time.monotonic() - t0
    shutil.rmtree(probe)
    return (max(0.0, (first if first is not None else end) - 1.0), end)


def test_generate_survives_sigkill(tmp_path: Path, crash_env: dict[str, str],
                                   two_questions_file: Path) -> None:
    def prepare(work: Path) -> None:
        work.mkdir(parents=True)

    def args_for(work: Path) -> list[str]:
        return ["generate", "smollm2-135m", "-q", str(two_questions_file), "-r", str(work / "run"),
                *GEN_FLAGS]

    def outputs(work: Path) -> object:
        return answers_of(work / "run"), manifest_of(work / "run")

    def progress(work: Path) -> int:  # answers written
        return lines(work / "run" / "answers" / "baseline.jsonl")

    window = write_window(args_for, crash_env, tmp_path, prepare)
    trials, figures = crash_trials("generate", prepare, args_for, outputs, progress, crash_env,
                                   tmp_path, window)
    figures["torn_write_trial_equal"] = torn_write_trial(tmp_path, "answers/baseline.jsonl",
                                                         args_for, outputs, crash_env)
    report(figures)
    assert figures["torn_write_trial_equal"]
    assert_trials(trials)
    assert figures["killed"] >= TRIALS // 2  # most kills landed before the end


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory: pytest.TempPathFactory, crash_env: dict[str, str],
                  two_questions_file: Path) -> Path:
    """A run folder with baseline (smollm2-135m) and compressed (-int4) answers."""
    root = tmp_path_factory.mktemp("generated") / "run"
    for model, role in (("smollm2-135m", "baseline"), ("smollm2-135m-int4", "compressed")):
        run_to_end(["generate", model, "--role", role, "-q", str(two_questions_file), "-r",
                    str(root), *GEN_FLAGS], crash_env, root.parent)
    return root


def test_diverge_survives_sigkill(tmp_path: Path, crash_env: dict[str, str],
                                  generated_run: Path) -> None:
    def prepare(work: Path) -> None:
        shutil.copytree(generated_run, work / "run")

    def args_for(work: Path) -> list[str]:
        return ["diverge", str(work / "run"), "--top-k", "8", "--dtype", "float32", "--no-progress"]

    window = write_window(args_for, crash_env, tmp_path, prepare)
    def progress(work: Path) -> int:  # cache shards, parts and result files in place
        d = work / "run" / "divergence"
        return sum(1 for p in d.rglob("*") if p.is_file() and not p.name.startswith(".")) if d.is_dir() else 0

    trials, figures = crash_trials("diverge", prepare, args_for, lambda w: divergence_of(w / "run"),
                                   progress, crash_env, tmp_path, window)
    report(figures)
    assert_trials(trials)
    assert figures["killed"] >= TRIALS // 2


CONCURRENCY = 4


def test_grade_survives_sigkill(tmp_path: Path) -> None:
    qfile = write_questions(tmp_path / "q.jsonl", 10)  # 40 single + 20 pairwise judgments
    seed_run = synthetic_run(tmp_path / "seed" / "run", qfile)
    servers: dict[str, FakeOpenAIServer] = {}  # one judge per trial, to count what it was billed

    def server_for(work: Path) -> FakeOpenAIServer:
        if work.name not in servers:
            servers[work.name] = FakeOpenAIServer(latency_s=0.12).__enter__()
        return servers[work.name]

    def prepare(work: Path) -> None:
        shutil.copytree(seed_run.root, work / "run")

    def args_for(work: Path) -> list[str]:
        return ["grade", str(work / "run"), "--judge", "fake-judge", "--judge-base-url",
                server_for(work).base_url, "--concurrency", str(CONCURRENCY), "--no-progress"]

    try:
        env = cli_env()
        window = write_window(args_for, env, tmp_path, prepare)
        trials, figures = crash_trials(
            "grade", prepare, args_for, lambda w: judgments_of(w / "run"),
            lambda w: lines(w / "run" / "judgments" / "single.jsonl")
            + lines(w / "run" / "judgments" / "pairwise.jsonl")
            + lines(w / "run" / "judgments" / "probes.jsonl"), env, tmp_path, window)
        torn_equal = []
        for name in ("single.jsonl", "pairwise.jsonl", "probes.jsonl"):
            shutil.rmtree(tmp_path / "torn", ignore_errors=True)
            torn_equal.append(torn_write_trial(tmp_path, f"judgments/{name}", args_for,
                                               lambda w: judgments_of(w / "run"), env))
        figures["torn_write_trial_equal"] = all(torn_equal)
        billed = {name: len(srv.requests) for name, srv in servers.items()}
    finally:
        for srv in servers.values():
            srv.__exit__(None, None, None)
    # no double billing: a kill costs at most the requests that were in flight when it came
    reference = billed["reference"]
    extra = [billed[f"trial-{t.index}"] - reference for t in trials]
    figures.update(reference_requests=reference, extra_requests_per_trial=extra)
    report(figures)
    assert_trials(trials)
    assert figures["killed"] >= TRIALS // 2
    assert all(0 <= e <= CONCURRENCY for e in extra), extra
    assert figures["torn_write_trial_equal"]
