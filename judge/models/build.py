"""How embedded model folders are made: GGUF -> bf16 checkpoint, RTN quantization, layer dropping.

Each builder writes a complete Hugging Face checkpoint folder (config, bf16 safetensors, tokenizer
with its chat template, generation config) into a fresh temporary folder and returns the facts the
model card must state. ``judge.models.registry`` owns where folders live and the atomic install; this
module also holds its helpers (the build progress display on stderr, the file lock, fsync).

The quantizer is round-to-nearest (RTN), symmetric, per group of ``group_size`` consecutive input
weights of each output row::

    qmax  = 2**(bits-1) - 1                    # 127 for int8, 7 for int4
    scale = max|w_group| / qmax                # one float32 scale per group
    q     = clamp(round(w / scale), -qmax-1, qmax)   # round half to even
    w'    = q * scale                          # stored dequantized, cast to bf16

All arithmetic is float32; only the result is cast to the weight's dtype.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from judge.errors import ModelBuildError

if TYPE_CHECKING:
    import torch
    from rich.console import Console
    from rich.progress import Progress, TaskID

# Files a checkpoint's tokenizer may consist of; copied verbatim from a parent into its variants.
TOKENIZER_FILES: tuple[str, ...] = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
    "chat_template.json", "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model",
    "vocab.txt", "spiece.model",
)


class BuildProgress(Protocol):
    """Where a builder reports what it is doing (a rich progress display, or nothing in tests)."""

    def step(self, text: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class NoProgress:
    def step(self, text: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


def say(text: str) -> None:
    from rich.console import Console

    from judge.logs import terminal

    Console(file=terminal(), highlight=False).print(f"[green]✓[/green] {text}", soft_wrap=True)


class _RichProgress:
    """One line per build step with a spinner or bar and the elapsed time."""

    def __init__(self, progress: "Progress", label: str):
        self._p = progress
        self._label = label
        self._task: "TaskID | None" = None
        self._total: int | None = None

    def close(self) -> None:
        if self._task is not None:
            done = self._total or 1
            self._p.update(self._task, total=done, completed=done)

    def step(self, text: str, total: int | None = None) -> None:
        self.close()
        self._total = total
        self._task = self._p.add_task(f"{self._label}: {text}", total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._p.advance(self._task, n)


class _LineProgress:
    """Without a terminal (logs, CI): one plain line when the build starts; `say` ends it."""

    def __init__(self, console: "Console", label: str, intro: str):
        self._console = console
        self._label = label
        self._intro = intro
        self._started = False

    def step(self, text: str, total: int | None = None) -> None:
        if not self._started:
            self._console.print(f"{self._label}: {self._intro}{text}", highlight=False,
                                markup=False, soft_wrap=True)
            self._started = True

    def advance(self, n: int = 1) -> None:
        pass


@contextmanager
def build_progress(label: str, intro: str | None = "building (first use): ") -> Iterator[BuildProgress]:
    """A spinner per step on a terminal; elsewhere one line ``label: intro + first step`` (none when
    ``intro`` is None: the caller's closing line is enough)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
    )

    from judge.logs import terminal

    console = Console(file=terminal())
    if not console.is_terminal:
        yield _LineProgress(console, label, intro) if intro is not None else NoProgress()
        return
    # transient: the steps vanish when the build ends, and `say` leaves one line in their place
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as p:
        rp = _RichProgress(p, label)
        yield rp
        rp.close()


@contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive lock between processes (and between threads: each call opens its own file)."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


# --------------------------------------------------------------------------- quantization


def rtn_quantize_dequantize(w: "torch.Tensor", bits: int, group_size: int) -> "torch.Tensor":
    """Round-to-nearest symmetric group quantization of a 2-D weight, returned dequantized.

    Groups are ``group_size`` consecutive entries along the last (input) dimension. A group of
    zeros stays zero. The result has ``w``'s shape and dtype; the arithmetic is float32.
    """
    import torch

    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be between 2 and 8, got {bits}")
    if w.ndim != 2 or w.shape[-1] % group_size != 0:
        raise ValueError(f"weight of shape {tuple(w.shape)} cannot be split into groups of "
                         f"{group_size} along its last dimension")
    qmax = 2 ** (bits - 1) - 1
    groups = w.detach().to(torch.float32).reshape(-1, group_size)  # (n_groups, group_size)
    scale = groups.abs().amax(dim=1, keepdim=True) / qmax  # (n_groups, 1)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # all-zero group -> q = 0
    q = torch.clamp(torch.round(groups / scale), -qmax - 1, qmax)
    return (q * scale).reshape(w.shape).to(w.dtype)


# --------------------------------------------------------------------------- helpers


def sha256_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Builders draw their own progress: silence transformers' bars and advice while they run."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@contextmanager
def _no_tqdm(module: object) -> Iterator[None]:
    """Silence the plain tqdm bars a library module draws regardless of its own switches (if this
    version of it has them), for our own display."""
    import functools

    original = getattr(module, "tqdm", None)
    if original is None:
        yield
        return
    setattr(module, "tqdm", functools.partial(original, disable=True))
    try:
        yield
    finally:
        setattr(module, "tqdm", original)


@contextmanager
def _no_gguf_tqdm() -> Iterator[None]:
    """transformers draws the GGUF conversion with a plain tqdm bar that ignores its own switch."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    with _no_tqdm(gguf_utils):
        yield


@contextmanager
def quiet_compressed_tensors() -> Iterator[None]:
    """compressed-tensors packs layers under a plain tqdm bar and logs through loguru."""
    from compressed_tensors.compressors.model_compressors import model_compressor
    from loguru import logger

    logger.disable("compressed_tensors")
    try:
        with _no_tqdm(model_compressor):
            yield
    finally:
        logger.enable("compressed_tensors")


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def copy_tokenizer(src: Path, dest: Path) -> None:
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dest / name)


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for pkg in ("torch", "transformers", "gguf", "safetensors", *extra):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


# --------------------------------------------------------------------------- builders


def _gguf_tensor_types(gguf_path: Path) -> dict[str, int]:
    """How many tensors of each GGML type the file holds (read from its header, memory-mapped)."""
    import gguf

    try:
        reader = gguf.GGUFReader(gguf_path)
    except (ValueError, OSError) as err:
        raise ModelBuildError(f"not a readable GGUF file ({err})", path=gguf_path) from None
    counts: dict[str, int] = {}
    for t in reader.tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    return counts


def convert_gguf(gguf_path: Path, dest: Path, progress: BuildProgress) -> dict[str, object]:
    """Dequantize a GGUF file into a bf16 checkpoint with its tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress.step(f"hashing {gguf_path.name}")
    digest = sha256_file(gguf_path)
    progress.step("converting GGUF to a bf16 checkpoint")
    tensor_types = _gguf_tensor_types(gguf_path)
    try:
        with _no_gguf_tqdm():
            tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.bfloat16)
    except (ValueError, KeyError, OSError, RuntimeError) as err:
        raise ModelBuildError(f"transformers cannot convert this GGUF file ({err})",
                              path=gguf_path) from None
    # The weights are already dequantized, but transformers still marks the model as GGUF-quantized
    # and refuses to save it until the marks are removed.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tok.eos_token_id is not None:  # generation stops where the chat template ends a turn
        model.generation_config.eos_token_id = tok.eos_token_id
        if tok.pad_token_id is not None:
            model.generation_config.pad_token_id = tok.pad_token_id
    progress.step("writing safetensors and tokenizer")
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    # "PreTrainedTokenizerFast" loads with transformers 4.x and 5.x alike (5.x writes its own
    # "TokenizersBackend" name, which 4.x does not know); the tokenizer itself is tokenizer.json.
    _edit_json(dest / "tokenizer_config.json", tokenizer_class="PreTrainedTokenizerFast",
               is_local=None, local_files_only=None)
    has_template = (dest / "chat_template.jinja").is_file() or bool(tok.chat_template)
    return {
        "gguf_file": gguf_path.name,
        "gguf_sha256": digest,
        "method": {
            "kind": "gguf_dequantize",
            "gguf_tensor_types": tensor_types,
            "weights": "every GGUF tensor dequantized by transformers (gguf_file=...) and stored "
                       "as bfloat16 safetensors; no other change",
            "tokenizer": "from the GGUF metadata, saved as tokenizer.json (tokenizer_class "
                         "PreTrainedTokenizerFast)",
            "chat_template": "chat_template.jinja, from the GGUF metadata" if has_template
                             else "none in the GGUF",
            "generation_config": {"eos_token_id": model.generation_config.eos_token_id,
                                  "pad_token_id": model.generation_config.pad_token_id},
        },
        "chat_template": has_template,
        "versions": package_versions(),
    }


def quantize_rtn(parent: Path, dest: Path, bits: int, group_size: int,
                 progress: BuildProgress) -> dict[str, object]:
    """Copy ``parent`` with every Linear weight except the output embedding RTN-quantized."""
    import torch
    from transformers import AutoModelForCausalLM

    progress.step(f"loading {parent.name}")
    model = AutoModelForCausalLM.from_pretrained(parent, dtype=torch.bfloat16)
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is model.get_input_embeddings().weight
    linears = [(name, mod) for name, mod in model.named_modules()
               if isinstance(mod, torch.nn.Linear) and mod is not head]
    progress.step(f"int{bits} RTN, group {group_size}: quantizing {len(linears)} Linear layers",
                  total=len(linears))
    with torch.no_grad():
        for _, mod in linears:
            mod.weight.copy_(rtn_quantize_dequantize(mod.weight, bits, group_size))
            progress.advance()
    qmax = 2 ** (bits - 1) - 1
    method: dict[str, object] = {
        "kind": "rtn",
        "bits": bits,
        "group_size": group_size,
        "symmetric": True,
        "group_axis": "input (last) dimension of each weight, consecutive entries",
        "qmax": qmax,
        "scale": f"max|w_group| / {qmax}, float32",
        "quantize": f"q = clamp(round_half_even(w / scale), {-qmax - 1}, {qmax})",
        "stored": "dequantized q * scale, cast to bfloat16",
        "quantized_modules": len(linears),
        "quantized_module_names": [name for name, _ in linears],
        "untouched": ["embed_tokens", "lm_head (tied to embed_tokens)" if tied else "lm_head",
                      "norms"],
        "lm_head_tied": tied,
    }
    model.config.judge_compression = {k: v for k, v in method.items()
                                      if k != "quantized_module_names"}
    progress.step("writing safetensors and tokenizer")
    model.save_pretrained(dest)
    copy_tokenizer(parent, dest)
    return {"method": method, "versions": package_versions()}


def drop_last_layers(parent: Path, dest: Path, n_drop: int,
                     progress: BuildProgress) -> dict[str, object]:
    """Copy ``parent`` without its last ``n_drop`` decoder layers."""
    import torch
    from transformers import AutoModelForCausalLM

    progress.step(f"loading {parent.name}")
    model = AutoModelForCausalLM.from_pretrained(parent, dtype=torch.bfloat16)
    layers = model.get_decoder().layers
    n_total = len(layers)
    if not 0 < n_drop < n_total:
        raise ModelBuildError(f"cannot drop {n_drop} of {n_total} decoder layers")
    keep = n_total - n_drop
    progress.step(f"dropping decoder layers {keep}..{n_total - 1}")
    model.get_decoder().layers = torch.nn.ModuleList(list(layers)[:keep])
    model.config.num_hidden_layers = keep
    if isinstance(getattr(model.config, "layer_types", None), list):
        model.config.layer_types = model.config.layer_types[:keep]
    method: dict[str, object] = {
        "kind": "drop_layers",
        "dropped_layers": list(range(keep, n_total)),
        "num_hidden_layers_before": n_total,
        "num_hidden_layers_after": keep,
        "stored": "remaining weights copied unchanged (bfloat16)",
    }
    model.config.judge_compression = method
    progress.step("writing safetensors and tokenizer")
    model.save_pretrained(dest)
    copy_tokenizer(parent, dest)
    return {"method": method, "versions": package_versions()}
