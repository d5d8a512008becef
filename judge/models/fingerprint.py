"""Fingerprints of checkpoint folders: what identifies a model without hashing its weights.

The config's hash, the weight files' names and sizes (and, for files in a Hugging Face hub cache,
their sha256, which the cache already names each blob by), the vocabulary's hash and size. Runs keep
them in their manifest to notice when a model changed under a role.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from judge.errors import ModelSpecError
from judge.models.build import TOKENIZER_FILES, sha256_file
from judge.schemas import ModelFingerprint, WeightFile

__all__ = ["fingerprint", "tokenizer_sha256"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
# The parts of tokenizer.json that decide which text becomes which id. Runtime settings
# (truncation, padding) and serialisation details are left out so that re-saving a tokenizer with
# another library version does not change the hash.
_TOKENIZER_JSON_KEYS = ("model", "added_tokens", "normalizer", "pre_tokenizer")


def tokenizer_sha256(path: Path) -> str | None:
    """A hash of the tokenizer's vocabulary: of canonical ``tokenizer.json`` when present, else of
    the vocabulary files (``vocab.json``, ``merges.txt``, ``tokenizer.model``...). None if neither."""
    import hashlib

    tj = path / "tokenizer.json"
    if tj.is_file():
        try:
            data = json.loads(tj.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ModelSpecError(f"tokenizer.json is not valid JSON ({err})", path=tj) from None
        core = {k: data.get(k) for k in _TOKENIZER_JSON_KEYS}
        canon = json.dumps(core, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()
    h = hashlib.sha256()
    found = False
    for name in TOKENIZER_FILES:
        if name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "chat_template.jinja", "chat_template.json"):
            continue
        f = path / name
        if f.is_file():
            found = True
            h.update(name.encode() + b"\0" + sha256_file(f).encode() + b"\0")
    return h.hexdigest() if found else None


_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _hub_blob_sha256(path: Path) -> str | None:
    """A Hugging Face cache snapshot links each file to ``blobs/<etag>``; for LFS files (weights) the
    etag is the file's sha256, so the content hash comes free. None for any other file."""
    if not path.is_symlink():
        return None
    target = path.resolve()
    return target.name if target.parent.name == "blobs" and _SHA256_RE.match(target.name) else None


def fingerprint(path: Path) -> ModelFingerprint:
    """What identifies a checkpoint folder: config hash, weight files and sizes, tokenizer hash."""
    path = Path(path)
    config = path / "config.json"
    config_sha = sha256_file(config) if config.is_file() else None
    vocab_size = None
    if config.is_file():
        try:
            cfg = json.loads(config.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ModelSpecError(f"config.json is not valid JSON ({err})", path=config) from None
        vocab_size = cfg.get("vocab_size") or (cfg.get("text_config") or {}).get("vocab_size")
    weights = [WeightFile(name=p.name, bytes=p.stat().st_size, sha256=_hub_blob_sha256(p))
               for p in sorted(path.iterdir()) if p.is_file() and p.suffix in _WEIGHT_SUFFIXES]
    return ModelFingerprint(config_sha256=config_sha, tokenizer_sha256=tokenizer_sha256(path),
                            weights=weights, vocab_size=vocab_size)
