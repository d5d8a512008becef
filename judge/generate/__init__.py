"""The generate stage: answer a question set with one model, turn by turn, into ``RUN/answers/``.

Owns chat templating (`chat`: the same prompt ids for every model and stage) and the engine seam
(`engines`: vLLM or transformers). Other stages call only what is named here.
"""

from judge.generate.chat import conversation, decode, prompt_ids, stop_token_ids
from judge.generate.engines import (Engine, auto_engine, cuda_available, configure_vllm_cpu_env,
                                    make_engine, resolve_dtype, vllm_available, vllm_build)
from judge.generate.engines.hf import load_hf_model
from judge.generate.stage import (GenerateResult, check_data_parallel, check_generation_inputs, generate,
                                  generate_all,
                                  generate_with, load_tokenizer)

__all__ = [
    "Engine", "GenerateResult", "auto_engine", "check_data_parallel", "check_generation_inputs", "configure_vllm_cpu_env", "conversation",
    "cuda_available", "decode", "generate", "generate_all", "generate_with", "load_hf_model", "load_tokenizer", "make_engine", "prompt_ids", "resolve_dtype",
    "stop_token_ids", "vllm_available", "vllm_build",
]
