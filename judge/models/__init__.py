"""Model specs: embedded default models (built offline into a cache), local checkpoints, fingerprints.

`registry` resolves a spec to a `ModelInfo` and lists the embedded models; `build` makes their
folders (GGUF conversion, RTN quantization, layer dropping). Other stages call only what is named here.
"""

from judge.models.registry import (DEFAULT_BASELINE, DEFAULT_COMPRESSED, EMBEDDED, ModelStatus,
                                   build_model, cache_dir, fingerprint, is_built, list_models,
                                   model_dir, resolve_model, tokenizer_sha256)

__all__ = [
    "DEFAULT_BASELINE", "DEFAULT_COMPRESSED", "EMBEDDED", "ModelStatus", "build_model", "cache_dir",
    "fingerprint", "is_built", "list_models", "model_dir", "resolve_model", "tokenizer_sha256",
]
