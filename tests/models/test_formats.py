"""judge.models.formats: a checkpoint's format from its config.json / model card, never by loading it."""

from __future__ import annotations

import json

import pytest

from judge.models import detect_format

CT_W4A16 = {"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {
    "group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int", "strategy": "group",
                                                   "group_size": 128, "symmetric": True}}}}
CT_W8A8 = {"quant_method": "compressed-tensors", "config_groups": {
    "group_0": {"targets": ["Linear"], "weights": {"num_bits": 8, "type": "int"},
                "input_activations": {"num_bits": 8, "type": "int", "dynamic": True}}}}
CT_FP8 = {"quant_method": "compressed-tensors", "config_groups": {
    "group_0": {"targets": ["Linear"], "weights": {"num_bits": 8, "type": "float"},
                "input_activations": {"num_bits": 8, "type": "float", "dynamic": True}}}}


def write_config(folder, quantization_config=None, card=None):
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model_type": "llama", "vocab_size": 4}
    if quantization_config is not None:
        cfg["quantization_config"] = quantization_config
    (folder / "config.json").write_text(json.dumps(cfg))
    if card is not None:
        (folder / "judge_model.json").write_text(json.dumps(card))
    return folder


@pytest.mark.parametrize("qc,method,scheme,label", [
    (None, "none", None, "unquantized"),
    (CT_W4A16, "compressed-tensors", "W4A16", "compressed-tensors W4A16"),
    (CT_W8A8, "compressed-tensors", "W8A8", "compressed-tensors W8A8"),
    (CT_FP8, "compressed-tensors", "FP8_DYNAMIC", "compressed-tensors FP8_DYNAMIC"),
    ({"quant_method": "gptq", "bits": 4, "group_size": 128}, "gptq", "4-bit g128", "gptq 4-bit g128"),
    ({"quant_method": "awq", "bits": 4, "group_size": 64}, "awq", "4-bit g64", "awq 4-bit g64"),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "bitsandbytes", "4-bit", "bitsandbytes 4-bit"),
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8", "block [128, 128]", "fp8 block [128, 128]"),
    ({"quant_method": "Something-New"}, "something-new", None, "something-new"),
])
def test_formats_from_config(tmp_path, qc, method, scheme, label):
    fmt = detect_format(write_config(tmp_path / "m", qc))
    assert (fmt.method, fmt.scheme, fmt.label) == (method, scheme, label)
    assert fmt.quantization_config == qc


def test_weight_bits():
    from judge.models import CheckpointFormat

    assert CheckpointFormat(method="compressed-tensors", scheme="W4A16").weight_bits == 4
    assert CheckpointFormat(method="compressed-tensors", scheme="W8A8").weight_bits == 8
    assert CheckpointFormat(method="gguf", scheme="Q8_0").weight_bits is None


def test_gguf_folders_say_so_in_their_card(tmp_path):
    written = {"method": {"kind": "gguf_quantize", "ggml_type": "Q4_0"}}
    assert detect_format(write_config(tmp_path / "a", card=written)).label == "GGUF Q4_0, dequantized"
    converted = {"method": {"kind": "gguf_dequantize",
                            "gguf_tensor_types": {"F32": 61, "Q4_1": 210, "Q8_0": 1}}}
    assert detect_format(write_config(tmp_path / "b", card=converted)).scheme == "Q4_1"
    other = {"method": {"kind": "rtn", "bits": 4}}
    assert detect_format(write_config(tmp_path / "c", card=other)).method == "none"


def test_unreadable_files_mean_unquantized(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    assert detect_format(tmp_path).method == "none"
    assert detect_format(tmp_path / "missing").method == "none"
