"""Which format a checkpoint folder is in: read from its files, never by loading it.

``config.json``'s ``quantization_config.quant_method`` names the format a checkpoint was saved in by
transformers, llm-compressor, GPTQModel, AutoAWQ, bitsandbytes...; a folder judge made from a GGUF file
says so in its model card (``judge_model.json``), since the GGUF's weights were dequantized into it.
The generation seam (which engine serves it) and the divergence stage's load check (can transformers
load it here) both decide from this one record.
"""

from __future__ import annotations

import json
from pathlib import Path

from judge.schemas import Record

__all__ = ["CheckpointFormat", "detect_format", "describe_format"]

CARD_FILE = "judge_model.json"


class CheckpointFormat(Record):
    """``method`` is ``none`` (plain weights), ``gguf`` (dequantized from a GGUF file) or the
    checkpoint's ``quant_method`` (``compressed-tensors``, ``gptq``, ``awq``, ``fp8``,
    ``bitsandbytes``...); ``scheme`` says which variant of it (``W4A16``, ``Q8_0``, ``4-bit g128``)."""

    method: str
    scheme: str | None = None
    quantization_config: dict[str, object] | None = None  # as in config.json, for the load check

    @property
    def label(self) -> str:
        if self.method == "none":
            return "unquantized"
        if self.method == "gguf":
            return f"GGUF {self.scheme or ''}, dequantized".replace(" ,", ",")
        return f"{self.method} {self.scheme}" if self.scheme else self.method

    @property
    def weight_bits(self) -> int | None:
        """Bits per stored weight for integer weight formats judge tells apart (else None)."""
        if self.scheme and self.scheme.startswith("W") and "A" in self.scheme:
            head = self.scheme[1:].split("A", 1)[0]
            return int(head) if head.isdigit() else None
        return None


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _ct_scheme(qc: dict[str, object]) -> str | None:
    """W4A16 / W8A16 / W8A8 / FP8 ... from a compressed-tensors ``config_groups``."""
    groups = qc.get("config_groups")
    if not isinstance(groups, dict) or not groups:
        return None
    names = set()
    for group in groups.values():
        if not isinstance(group, dict):
            continue
        w = group.get("weights") or {}
        a = group.get("input_activations") or {}
        if not isinstance(w, dict) or not isinstance(a, dict):
            continue
        wtype, wbits = w.get("type", "int"), w.get("num_bits")
        if wtype == "float" and a.get("type") == "float" and wbits == 8:
            names.add("FP8_DYNAMIC" if a.get("dynamic") else "FP8")
        elif wtype == "float":
            names.add(f"FP{wbits}A{a.get('num_bits', 16)}")
        else:
            names.add(f"W{wbits}A{a.get('num_bits', 16) if a else 16}")
    return "+".join(sorted(names)) or None


def detect_format(path: Path) -> CheckpointFormat:
    """The format of a checkpoint folder (see the module docstring)."""
    path = Path(path)
    config = _read_json(path / "config.json") or {}
    qc = config.get("quantization_config")
    if isinstance(qc, dict):
        method = str(qc.get("quant_method", "unknown")).lower()
        scheme: str | None = None
        if method == "compressed-tensors":
            scheme = _ct_scheme(qc)
        elif method == "bitsandbytes":
            scheme = "4-bit" if qc.get("load_in_4bit") else "8-bit" if qc.get("load_in_8bit") else None
        elif method in ("gptq", "awq") and qc.get("bits") is not None:
            scheme = f"{qc['bits']}-bit g{qc.get('group_size', '?')}"
        elif method == "fp8":
            block = qc.get("weight_block_size")
            scheme = f"block {block}" if block else None
        return CheckpointFormat(method=method, scheme=scheme, quantization_config=qc)
    card = _read_json(path / CARD_FILE) or {}
    method_facts = card.get("method")
    if isinstance(method_facts, dict) and method_facts.get("kind") in ("gguf_dequantize", "gguf_quantize"):
        return CheckpointFormat(method="gguf", scheme=_gguf_type(card))
    return CheckpointFormat(method="none")


def _gguf_type(card: dict[str, object]) -> str | None:
    method = card.get("method")
    if isinstance(method, dict):
        if isinstance(method.get("ggml_type"), str):
            return str(method["ggml_type"])
        types = method.get("gguf_tensor_types")
        if isinstance(types, dict) and types:  # the most common 2-D type names the file
            return str(max(types, key=lambda k: types[k] if k not in ("F32", "F16", "BF16") else -1))
    return None


def describe_format(path: Path) -> str:
    return detect_format(path).label
