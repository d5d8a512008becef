"""Shared fixtures: paths to the shared MT-Bench data, embedded models, small question files.

Expensive things (built models, vLLM engines and servers) are session-scoped and shared. Models are
built into $JUDGE_CACHE (the user's cache by default), never per test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_MTBENCH = Path(os.environ.get("JUDGE_SHARED_MTBENCH", ROOT.parent / "shared" / "mtbench_data"))

# vLLM on a small CPU: use every core, a small KV cache.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{(os.cpu_count() or 1) - 1}")
os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def mtbench_dir() -> Path:
    """FastChat's MT-Bench files in ../shared (absent in a user's clone: skip)."""
    if not (SHARED_MTBENCH / "question.jsonl").is_file():
        pytest.skip(f"FastChat MT-Bench data not found at {SHARED_MTBENCH} (only in the dev workspace)")
    return SHARED_MTBENCH


@pytest.fixture(scope="session")
def base_model():
    """The embedded SmolLM2-135M-Instruct checkpoint (built once into the cache)."""
    from judge.models.registry import resolve_model

    return resolve_model("smollm2-135m")


@pytest.fixture(scope="session")
def int4_model():
    from judge.models.registry import resolve_model

    return resolve_model("smollm2-135m-int4")


@pytest.fixture()
def two_questions(tmp_path: Path) -> Path:
    """A two-question, two-turn FastChat question file."""
    p = tmp_path / "q.jsonl"
    p.write_text(
        '{"question_id": 1, "category": "writing", "turns": ["Name a colour of the sky.", '
        '"Now name a different one."]}\n'
        '{"question_id": 2, "category": "math", "turns": ["What is 2 + 3?", "Multiply that by 4."], '
        '"reference": ["5", "20"]}\n',
        encoding="utf-8",
    )
    return p


# --------------------------------------------------------------------------- the opt-in `gpu` marker
# Tests marked `gpu` run where CUDA is available and are skipped elsewhere. JUDGE_GPU_TESTS_ON_CPU=1
# runs them on the CPU instead (the GPU check's dry run: their logic is tried here before GPU
# minutes are spent on it). JUDGE_GPU_TEST_MODEL names the checkpoint they load (the GPU check
# passes its stand-in); by default the embedded smollm2-135m.


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items or os.environ.get("JUDGE_GPU_TESTS_ON_CPU") == "1" or _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (opt-in marker `gpu`; "
                                   "JUDGE_GPU_TESTS_ON_CPU=1 runs it on the CPU)")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def accel_device() -> str:
    """Where a `gpu` test computes: cuda, or cpu under JUDGE_GPU_TESTS_ON_CPU=1."""
    return "cuda" if _cuda_available() else "cpu"


@pytest.fixture(scope="session")
def gpu_model_path() -> str:
    """The checkpoint the `gpu` tests load: $JUDGE_GPU_TEST_MODEL, else the embedded baseline."""
    path = os.environ.get("JUDGE_GPU_TEST_MODEL")
    if path:
        return path
    from judge.errors import JudgeError
    from judge.models.registry import resolve_model

    try:
        return resolve_model("smollm2-135m").path
    except JudgeError as err:
        pytest.skip(f"no model for the gpu tests: set JUDGE_GPU_TEST_MODEL ({err})")
