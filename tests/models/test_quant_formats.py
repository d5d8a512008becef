"""(slow) The embedded variants in real formats, checked against hand computations on their files:
compressed-tensors W4A16 / W8A16 / W8A8 and GGUF Q8_0 / Q4_0 of smollm2-135m, built into the shared cache.

The packed integers are unpacked here by hand (nibble order as compressed-tensors documents it) and
compared with round-to-nearest of the baseline's own weights; the GGUF tensors are read with
gguf's reader and compared with the baseline weights and with the folder transformers made of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from judge.models import detect_format, resolve_model

pytestmark = pytest.mark.slow

CT = {"smollm2-135m-w4a16": (4, 64), "smollm2-135m-w8a16": (8, 64), "smollm2-135m-w8a8": (8, None)}
GGUF = {"smollm2-135m-q8_0": "Q8_0", "smollm2-135m-q4_0": "Q4_0"}


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


@pytest.fixture(scope="module")
def base_weights(base_model) -> dict[str, torch.Tensor]:
    return tensors(Path(base_model.path))


def unpack_int4(packed: np.ndarray) -> np.ndarray:
    """(out, in/8) int32 -> (out, in) int: value j of each 8 sits in bits 4j..4j+3, stored as q + 8."""
    words = packed.astype(np.int64) & 0xFFFFFFFF
    nibbles = [(words >> (4 * j)) & 0xF for j in range(8)]  # each (out, in/8)
    return np.stack(nibbles, axis=-1).reshape(packed.shape[0], -1) - 8


@pytest.mark.parametrize("name", list(CT))
def test_compressed_tensors_checkpoint_is_rtn_of_the_baseline(name, base_weights):
    bits, group = CT[name]
    info = resolve_model(name)
    folder = Path(info.path)
    qc = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors" and qc["ignore"] == ["lm_head"]
    fmt = detect_format(folder)
    assert fmt.weight_bits == bits and info.format == fmt.label
    w_args = qc["config_groups"]["group_0"]["weights"]
    assert (w_args["num_bits"], w_args["symmetric"], w_args.get("group_size")) == (bits, True, group)
    has_acts = qc["config_groups"]["group_0"].get("input_activations") is not None
    assert has_acts == (name.endswith("w8a8"))
    t = tensors(folder)
    key = "model.layers.3.mlp.down_proj"
    w = base_weights[key + ".weight"].float().numpy()  # (576, 1536)
    scale = t[key + ".weight_scale"].float().numpy()
    if bits == 4:
        assert qc["format"] == "pack-quantized"
        q = unpack_int4(t[key + ".weight_packed"].numpy())
    else:
        stored = t.get(key + ".weight_packed", t.get(key + ".weight"))
        q = stored.numpy().astype(np.int64)
        if stored.dtype == torch.int32:  # 8-bit pack-quantized: 4 values per int32, stored as q + 128
            words = q & 0xFFFFFFFF
            q = np.stack([(words >> (8 * j)) & 0xFF for j in range(4)], -1).reshape(w.shape[0], -1) - 128
    assert q.shape == w.shape
    qmax = 2 ** (bits - 1)
    assert q.min() >= -qmax and q.max() <= qmax - 1
    g = w.shape[1] if group is None else group
    groups = w.reshape(w.shape[0], -1, g)  # (out, in / g, g)
    absmax = np.abs(groups).max(axis=-1)  # (out, in / g)
    hand_scale = absmax / ((2 ** bits - 1) / 2)  # compressed-tensors: max|w| / (range / 2)
    np.testing.assert_allclose(scale.reshape(hand_scale.shape), hand_scale, rtol=2 ** -7)
    # round-to-nearest as compressed-tensors computes it, in the model's dtype: the bf16 weight over
    # the stored bf16 scale, the quotient rounded to bf16, then to the nearest integer in range
    sc = scale.reshape(*hand_scale.shape, 1)
    w16 = torch.from_numpy(groups).to(torch.bfloat16)
    quotient = w16 / torch.from_numpy(sc).to(torch.bfloat16)  # a bf16 tensor
    hand_q = torch.clamp(torch.round(quotient.float()), -qmax, qmax - 1).numpy().astype(np.int64)
    np.testing.assert_array_equal(q.reshape(groups.shape), hand_q)
    # so the dequantized weight is within half a step plus the bf16 rounding of a quotient <= qmax
    err = np.abs(q.reshape(groups.shape) * sc - groups)
    assert bool((err <= sc * (0.5 + qmax * 2 ** -7) + 1e-7).all())
    assert float(np.median(err / sc)) < 0.3  # most weights land well inside their step
    # the other weights are untouched: embeddings and norms equal the baseline's
    assert torch.equal(t["model.embed_tokens.weight"], base_weights["model.embed_tokens.weight"])
    assert torch.equal(t["model.norm.weight"], base_weights["model.norm.weight"])


@pytest.mark.parametrize("name", list(GGUF))
def test_gguf_file_is_the_baseline_in_that_type_and_its_conversion(name, base_weights):
    import gguf

    ggml_type = GGUF[name]
    info = resolve_model(name)
    folder = Path(info.path)
    (file,) = folder.glob("*.gguf")
    reader = gguf.GGUFReader(file)
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["token_embd.weight"] == "Q8_0"  # tied output matrix kept at Q8_0 (Q4_0) or Q8_0 itself
    assert kinds["blk.0.attn_norm.weight"] == "F32"
    assert {v for k, v in kinds.items() if k.startswith("blk.") and "norm" not in k} == {ggml_type}
    assert reader.fields["general.file_type"].contents() == {"Q8_0": 7, "Q4_0": 2}[ggml_type]
    assert "<|im_start|>" in reader.fields["tokenizer.chat_template"].contents()
    assert info.format == f"GGUF {ggml_type}, dequantized"

    t = next(t for t in reader.tensors if t.name == "blk.3.ffn_down.weight")
    deq = gguf.quants.dequantize(t.data, t.tensor_type)  # (576, 1536), the HF layout for down_proj
    w = base_weights["model.layers.3.mlp.down_proj.weight"].float().numpy()
    assert deq.shape == w.shape
    blocks = w.reshape(w.shape[0], -1, 32)
    # d is stored as float16 (relative error 2**-11, times at most 127 or 8 steps)
    if ggml_type == "Q8_0":  # d = max|x| / 127 per block of 32, x' = round(x / d) * d: half a step
        step = np.abs(blocks).max(-1, keepdims=True) / 127
        bound = step * (0.5 + 127 * 2 ** -11)
    else:  # Q4_0: d = -x_at_max|x| / 8, x' = (q - 8) * d, q = min(15, trunc(x / d + 8.5)): the
        step = np.abs(blocks).max(-1, keepdims=True) / 8  # far end (x / d = +8) is clipped to 7 d
        bound = step * (1 + 8 * 2 ** -11)
    err = np.abs(deq.reshape(blocks.shape) - blocks)
    assert bool((err <= bound + 1e-6).all())
    assert err.max() > 0  # it was quantized
    # transformers' dequantization of that file is the checkpoint beside it (bf16)
    conv = tensors(folder)["model.layers.3.mlp.down_proj.weight"]
    assert torch.equal(conv, torch.from_numpy(deq).to(torch.bfloat16))

