"""Can transformers load this checkpoint here? Asked before any answer is generated.

The divergence stage scores every model with transformers. A quantized checkpoint loads through the
transformers quantizer named by its ``quantization_config.quant_method``, and that quantizer's
``validate_environment`` is the check transformers itself runs first when loading (missing packages,
no GPU for a GPU-only kernel). `check_loadable` runs that same check up front, so a format this
machine cannot load is refused in one line that says what to install, and never after hours of
generation. What to install comes from transformers' quantization docs: GPTQ and AWQ load through
GPTQModel (GPTQ also needs optimum), bitsandbytes through bitsandbytes (mostly CUDA), FP8 and
compressed-tensors load anywhere (FP8 is dequantized where there is no FP8 GPU).
"""

from __future__ import annotations

from pathlib import Path

from judge.errors import EngineError
from judge.models import check_weights, detect_format
from judge.schemas import ModelInfo

__all__ = ["INSTALL_HINTS", "check_loadable"]

INSTALL_HINTS: dict[str, str] = {
    "compressed-tensors": "pip install compressed-tensors",
    "gptq": "pip install gptqmodel optimum (transformers loads GPTQ through GPTQModel)",
    "awq": "pip install gptqmodel (transformers loads AWQ through GPTQModel)",
    "bitsandbytes": "pip install bitsandbytes, on a machine it supports (a CUDA GPU for most builds)",
    "fp8": "pip install accelerate",
    "fbgemm_fp8": "a CUDA GPU with compute capability 9.0 and pip install fbgemm-gpu",
    "torchao": "pip install torchao",
    "hqq": "pip install hqq",
    "quanto": "pip install optimum-quanto",
}


def _first_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:240] + "…") if len(text) > 240 else text or type(err).__name__


def check_loadable(model: ModelInfo, *, device_map: str | None = None, dtype: str = "auto") -> None:
    """Raise `EngineError` (one line) when transformers cannot load ``model`` on this machine
    (and `ModelSpecError` when a weight file is empty, truncated or no safetensors file)."""
    check_weights(Path(model.path))
    fmt = detect_format(Path(model.path))
    qc = fmt.quantization_config
    if qc is None:  # plain weights, or a GGUF already dequantized into a checkpoint
        return
    import transformers
    from transformers.quantizers.auto import AUTO_QUANTIZER_MAPPING, AutoHfQuantizer

    key = fmt.method
    if key == "bitsandbytes":
        key = "bitsandbytes_4bit" if qc.get("load_in_4bit") else "bitsandbytes_8bit"
    hint = INSTALL_HINTS.get(fmt.method, f"see transformers' quantization docs for {fmt.method}")
    where = f"divergence needs transformers to load {model.spec} ({fmt.label})"
    if key not in AUTO_QUANTIZER_MAPPING:
        raise EngineError(f"{where}, but transformers {transformers.__version__} has no loader for "
                          f"quant_method {fmt.method!r}: upgrade transformers, or run with "
                          "--no-diverge")
    try:
        quantizer = AutoHfQuantizer.from_config(dict(qc), pre_quantized=True)
        quantizer.validate_environment(device_map=device_map, dtype=dtype, weights_only=True)
    except (ImportError, RuntimeError, ValueError, TypeError, KeyError) as err:
        raise EngineError(f"{where}, and it cannot here ({_first_line(err)}): {hint}; or run with "
                          "--no-diverge") from None
