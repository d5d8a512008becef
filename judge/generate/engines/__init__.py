"""The generation seam: the `Engine` protocol and `make_engine`, which picks vLLM or transformers.

An engine takes already-templated prompts as token ids (see `judge.generate.chat`) and returns
generated ids, so both engines see byte-identical prompts. Everything above this seam is
engine-agnostic.
"""

from __future__ import annotations

from judge.config import EngineOptions
from judge.errors import EngineError
from judge.generate.engines.base import (Completion, Engine, FinishReason, configure_vllm_cpu_env,
                                         cpu_has_native_bf16, cuda_available, resolve_dtype,
                                         vllm_available)

__all__ = [
    "Completion", "Engine", "FinishReason", "configure_vllm_cpu_env", "cpu_has_native_bf16",
    "cuda_available", "make_engine", "resolve_dtype", "vllm_available",
]


def make_engine(model_dir: str, options: EngineOptions, *, seed: int = 0) -> Engine:
    """Build the engine named by ``options.engine`` (``auto``: vLLM when it imports, else hf)."""
    choice = options.engine
    if choice == "auto":
        choice = "vllm" if vllm_available() else "hf"
    if choice == "vllm":
        if not vllm_available():
            raise EngineError("engine 'vllm' asked for but vllm is not installed: "
                              "pip install 'judge[gpu]' (GPU) or 'judge[cpu]' (CPU), or use --engine hf")
        from judge.generate.engines.vllm import VLLMEngine

        return VLLMEngine(model_dir, options, seed=seed)
    from judge.generate.engines.hf import HFEngine

    return HFEngine(model_dir, options)
