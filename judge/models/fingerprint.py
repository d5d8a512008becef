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
        if not isinstance(cfg, dict):
            raise ModelSpecError(f"config.json must hold a JSON object, not {type(cfg).__name__}: "
                                 "restore the checkpoint's config.json", path=config)
        text_config = cfg.get("text_config")
        vocab_size = cfg.get("vocab_size") or (
            text_config.get("vocab_size") if isinstance(text_config, dict) else None)
        if vocab_size is not None and (not isinstance(vocab_size, int) or isinstance(vocab_size, bool)):
            raise ModelSpecError(f"config.json: vocab_size must be an integer, got {vocab_size!r}",
                                 path=config)
    weight_paths = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix in _WEIGHT_SUFFIXES]
    weights = [WeightFile(name=p.name, bytes=p.stat().st_size, sha256=_hub_blob_sha256(p))
               for p in weight_paths]
    return ModelFingerprint(config_sha256=config_sha, tokenizer_sha256=tokenizer_sha256(path),
                            weights=weights, vocab_size=vocab_size)


def check_weights(folder: Path) -> None:
    """No weight file of a checkpoint folder is empty, and every ``.safetensors`` file is whole
    (see `check_safetensors`); called where a model is about to be loaded, before anything is
    written."""
    for p in sorted(Path(folder).iterdir()) if Path(folder).is_dir() else []:
        if not p.is_file() or p.suffix not in _WEIGHT_SUFFIXES:
            continue
        if p.stat().st_size == 0:
            raise ModelSpecError("an empty weight file (0 bytes): copy or download the checkpoint "
                                 "again", path=p)
        if p.suffix == ".safetensors":
            check_safetensors(p)


def check_safetensors(path: Path) -> None:
    """A ``.safetensors`` file starts with an 8-byte little-endian header length and a JSON header
    of that length: check both (cheap: the tensors are not read), so an empty, truncated or foreign
    file is refused with its name before an engine loads for minutes and fails inside a library."""
    fix = "copy or download the checkpoint again"
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelSpecError(f"not a safetensors file ({size} bytes, empty or truncated): {fix}",
                                 path=path)
        n = int.from_bytes(head, "little")
        if n < 2 or 8 + n > size:
            raise ModelSpecError(f"not a safetensors file (header length {n} does not fit in "
                                 f"{size} bytes: truncated or corrupt): {fix}", path=path)
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelSpecError(f"not a safetensors file (its header is not JSON): {fix}",
                             path=path) from None
    if not isinstance(header, dict):
        raise ModelSpecError(f"not a safetensors file (its header is not a JSON object): {fix}",
                             path=path)
    ends = [v.get("data_offsets", [0, 0])[1] for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and isinstance(v.get("data_offsets"), list)
            and len(v["data_offsets"]) == 2 and isinstance(v["data_offsets"][1], int)]
    if ends and 8 + n + max(ends) > size:
        raise ModelSpecError(f"truncated safetensors file ({size} bytes, its tensors need "
                             f"{8 + n + max(ends)}): {fix}", path=path)
