"""Model specs: embedded default models (built offline into a cache), local checkpoints, fingerprints.

`registry` resolves a spec to a `ModelInfo` and lists the embedded models; `hub` resolves hub ids
through huggingface_hub's cache; `formats` tells a checkpoint's format from its files; `build` and
`quant_build` make the embedded folders (GGUF conversion, RTN quantization, layer dropping,
compressed-tensors checkpoints, GGUF files in llama.cpp quant types). Other stages call only what is named here.
"""

from judge.models.fingerprint import check_weights
from judge.models.formats import CheckpointFormat, describe_format, detect_format
from judge.models.registry import (DEFAULT_BASELINE, DEFAULT_COMPRESSED, EMBEDDED, ModelStatus,
                                   build_model, cache_dir, fingerprint, is_built, list_models,
                                   model_dir, resolve_model, tokenizer_sha256)

__all__ = [
    "DEFAULT_BASELINE", "DEFAULT_COMPRESSED", "EMBEDDED", "CheckpointFormat", "ModelStatus",
    "build_model", "cache_dir", "check_weights", "describe_format", "detect_format",
    "fingerprint", "is_built", "list_models", "model_dir", "resolve_model", "tokenizer_sha256",
]
