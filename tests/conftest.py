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
