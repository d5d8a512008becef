"""Files of the divergence stage: the baseline top-K cache and the per-token arrays of each role.

Baseline cache, one folder per K and tail-sample count (``RUN/divergence/baseline.k64s16.cache/``,
``baseline.k64.cache/`` without tail samples, ``baseline.full.cache/``)::

    header.json        CacheHeader: format version, K, vocabulary size, tokenizer and vocab hashes,
                       the baseline model, the number S of tail samples; written once, before
                       the first shard
    shard-00000.npz    a chunk of questions: their sequences (token ids, prompt lengths, sha256)
    shard-00001.npz    and, per scored position, the top-K log-probs (float32, descending) and
    ...                ids (uint16 when the vocabulary fits, else int32), the log tail mass, the
                       log-prob of the actual token (float32), and S token ids drawn from the tail
                       with their log-probs (see `judge.diverge.kl`)

A full cache (K = vocabulary) keeps all V log-probs per position, in token order, and no ids.
Every file is written to a temporary name, fsynced and moved into place, so a crash leaves whole
shards only; a rerun computes the questions no shard holds. Each shard carries a random ``uid``
that the per-role results record, so results computed from a replaced shard are recomputed.

Per-token arrays of a role, ``RUN/divergence/<role>.tokens.npz`` (`TokenArrays`): for every scored
(question, turn) segment, KL, top-1 agreement, Δp, both NLLs and the actual token ids, float32 /
bool / int32, with offsets per segment; the report colours tokens from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from judge.errors import RunFolderError, TokenizerMismatchError
from judge.schemas import ModelFingerprint, Record

# 2 added the tail samples (a version-1 cache reads as S = 0); 3 seeds each sequence's tail draws
# by its (question, turn) (`judge.diverge.kl.tail_seed`). The arrays are the same in 2 and 3, so a
# version-2 cache is still read and its results are valid estimates, but its draws gave position j
# of every answer the same random offset (noise correlated across answers): the summary says so,
# and deleting the folder redraws them. Shards added to a version-2 cache are seeded per sequence.
CACHE_FORMAT_VERSION = 3
READABLE_CACHE_VERSIONS = (1, 2, 3)
SHARED_OFFSET_VERSIONS = (2,)  # tail draws with one offset stream per call (see above)
TOKENS_FORMAT_VERSION = 1
LLAMA_CPP_BYTES_PER_VOCAB = 2  # llama-perplexity --kl-divergence-base stores uint16 per token


@dataclass(frozen=True)
class Sequence:
    """One teacher-forced sequence: turn ``turn`` of question ``key`` on the baseline's conversation.

    ids = chat-templated prompt + the baseline's answer ids; positions prompt_len-1 .. len-2
    predict the answer tokens ids[prompt_len:].
    """

    key: str
    turn: int
    category: str
    ids: tuple[int, ...]
    prompt_len: int

    @property
    def n_answer(self) -> int:
        return len(self.ids) - self.prompt_len

    @property
    def targets(self) -> tuple[int, ...]:
        return self.ids[self.prompt_len:]

    @property
    def sha256(self) -> str:
        data = np.asarray(self.ids, dtype="<i8").tobytes() + self.prompt_len.to_bytes(8, "little")
        return hashlib.sha256(data).hexdigest()


def sequences_sha256(seqs: list[Sequence]) -> str:
    """One hash over an ordered list of sequences (question, turn, ids)."""
    h = hashlib.sha256()
    for s in seqs:
        h.update(f"{s.key}\0{s.turn}\0{s.sha256}\n".encode())
    return h.hexdigest()


def id_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.int32)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez (uncompressed) to a temporary file, fsync, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextmanager
def open_npz(path: Path, fix: str = "delete it and rerun `judge diverge`") -> Iterator[np.lib.npyio.NpzFile]:
    """``np.load`` of a stored ``.npz``; a truncated, corrupt or foreign file (caught while it is
    opened *and* while its arrays are read in the block) is one `RunFolderError` naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            yield z
    except (zipfile.BadZipFile, ValueError, KeyError, EOFError, IndexError, TypeError,
            json.JSONDecodeError, UnicodeDecodeError) as err:
        reason = " ".join(str(err).split())[:120] or type(err).__name__
        raise RunFolderError(f"corrupt or truncated .npz file ({type(err).__name__}: {reason}); "
                             f"{fix}", path=path) from None


def _meta(z: np.lib.npyio.NpzFile) -> dict:
    return json.loads(str(z["meta"][()]))


# --------------------------------------------------------------------------- baseline cache


class CacheHeader(Record):
    format_version: int = CACHE_FORMAT_VERSION
    top_k: int | None  # None: full log-probs (exact)
    tail_samples: int = 0  # S tail draws per position (0 for a full cache)
    vocab_size: int
    tokenizer_sha256: str
    vocab_sha256: str
    baseline_spec: str
    baseline_fingerprint: ModelFingerprint | None = None
    dtype: str
    created: float


@dataclass
class Shard:
    """A shard read back: its sequences and their cached rows as numpy arrays."""

    name: str
    uid: str
    seqs: list[Sequence]
    pos_offsets: np.ndarray  # (S + 1,) int64: seq i's positions are [off[i], off[i+1])
    logp: np.ndarray  # (N, K) or (N, V) float32
    ids: np.ndarray | None  # (N, K) uint16/int32; None for a full cache
    log_tail: np.ndarray  # (N,) float32
    logp_target: np.ndarray  # (N,) float32
    tail_ids: np.ndarray | None = None  # (N, S) uint16/int32
    tail_logp: np.ndarray | None = None  # (N, S) float32


class BaselineCache:
    """One baseline cache folder (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @staticmethod
    def folder_name(top_k: int | None, tail_samples: int = 0) -> str:
        if top_k is None:
            return "baseline.full.cache"
        return f"baseline.k{top_k}{f's{tail_samples}' if tail_samples else ''}.cache"

    @property
    def header_path(self) -> Path:
        return self.root / "header.json"

    def header(self) -> CacheHeader | None:
        if not self.header_path.is_file():
            return None
        try:
            raw = json.loads(self.header_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunFolderError(f"baseline cache header is not valid JSON ({type(err).__name__}); "
                                 "delete the cache folder to rebuild it", path=self.header_path) from None
        if not isinstance(raw, dict):
            raise RunFolderError("baseline cache header is not a JSON object; delete the cache "
                                 "folder to rebuild it", path=self.header_path)
        if raw.get("format_version") not in READABLE_CACHE_VERSIONS:
            raise RunFolderError(f"baseline cache format {raw.get('format_version')!r} is not a "
                                 f"supported one {READABLE_CACHE_VERSIONS}; delete the folder to "
                                 "rebuild it", path=self.root)
        try:
            return CacheHeader.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "header"
            raise RunFolderError(f"baseline cache header is invalid ({where}: {first.get('msg')}); "
                                 "delete the cache folder to rebuild it", path=self.header_path) from None

    def check_header(self, *, tokenizer_sha256: str, vocab_sha256: str,
                     baseline_fingerprint: ModelFingerprint | None) -> CacheHeader | None:
        """Refuse a cache made with another tokenizer or another baseline model."""
        head = self.header()
        if head is None:
            return None
        if head.tokenizer_sha256 != tokenizer_sha256 or head.vocab_sha256 != vocab_sha256:
            raise TokenizerMismatchError(
                f"baseline cache was made with another tokenizer ({head.tokenizer_sha256[:12]} vs "
                f"{tokenizer_sha256[:12]}); delete the folder to rebuild it", path=self.root)
        if (head.baseline_fingerprint and baseline_fingerprint
                and head.baseline_fingerprint != baseline_fingerprint):
            raise RunFolderError(f"baseline cache was made by another baseline model "
                                 f"({head.baseline_spec!r}); delete the folder to rebuild it",
                                 path=self.root)
        return head

    def write_header(self, header: CacheHeader) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".header.json.{os.getpid()}.tmp"
        tmp.write_text(header.model_dump_json(indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.header_path)

    def shard_paths(self) -> list[Path]:
        return sorted(self.root.glob("shard-*.npz"))

    def index(self) -> dict[tuple[str, int], tuple[str, str]]:
        """(question key, turn) -> (shard name, sequence sha256), reading only the small arrays."""
        out: dict[tuple[str, int], tuple[str, str]] = {}
        for path in self.shard_paths():
            with open_npz(path) as z:
                for key, turn, sha in zip(z["keys"].tolist(), z["turns"].tolist(),
                                          z["seq_sha"].tolist()):
                    out[(key, int(turn))] = (path.name, sha)
        return out

    def check_sequences(self, seqs: list[Sequence]) -> list[Sequence]:
        """Return the sequences no shard holds; refuse when a shard holds a different sequence."""
        index = self.index()
        todo = []
        for s in seqs:
            have = index.get((s.key, s.turn))
            if have is None:
                todo.append(s)
            elif have[1] != s.sha256:
                raise RunFolderError(
                    f"baseline cache holds other tokens for question {s.key} turn {s.turn} "
                    f"({have[0]}): the baseline answers or the chat template changed; delete "
                    "the folder to rebuild it", path=self.root)
        return todo

    def next_shard_path(self) -> Path:
        paths = self.shard_paths()
        n = int(paths[-1].stem.split("-")[1]) + 1 if paths else 0
        return self.root / f"shard-{n:05d}.npz"

    def write_shard(self, seqs: list[Sequence], logp: np.ndarray, ids: np.ndarray | None,
                    log_tail: np.ndarray, logp_target: np.ndarray, vocab_size: int,
                    tail_ids: np.ndarray | None = None,
                    tail_logp: np.ndarray | None = None) -> Path:
        """Write one shard atomically; rows of all sequences concatenated in order."""
        dt = id_dtype(vocab_size)
        seq_off = np.cumsum([0] + [len(s.ids) for s in seqs], dtype=np.int64)
        pos_off = np.cumsum([0] + [s.n_answer for s in seqs], dtype=np.int64)
        if logp.shape[0] != pos_off[-1]:
            raise ValueError(f"{logp.shape[0]} cached rows for {pos_off[-1]} answer tokens")
        arrays = {
            "meta": np.array(json.dumps({"format_version": CACHE_FORMAT_VERSION,
                                         "uid": uuid.uuid4().hex})),
            "keys": np.array([s.key for s in seqs]),
            "turns": np.array([s.turn for s in seqs], dtype=np.int32),
            "categories": np.array([s.category for s in seqs]),
            "seq_sha": np.array([s.sha256 for s in seqs]),
            "prompt_lens": np.array([s.prompt_len for s in seqs], dtype=np.int32),
            "seq_offsets": seq_off,
            "seq_ids": np.concatenate([np.asarray(s.ids, dtype=dt) for s in seqs]),
            "pos_offsets": pos_off,
            "logp": logp.astype(np.float32, copy=False),
            "log_tail": log_tail.astype(np.float32, copy=False),
            "logp_target": logp_target.astype(np.float32, copy=False),
        }
        if ids is not None:
            arrays["ids"] = ids.astype(dt, copy=False)
        if tail_ids is not None and tail_logp is not None:
            arrays["tail_ids"] = tail_ids.astype(dt, copy=False)
            arrays["tail_logp"] = tail_logp.astype(np.float32, copy=False)
        path = self.next_shard_path()
        _save_npz(path, arrays)
        return path

    def read_shard(self, path: Path) -> Shard:
        with open_npz(path) as z:
            seq_off = z["seq_offsets"]
            seq_ids = z["seq_ids"].astype(np.int64)
            seqs = [Sequence(key=k, turn=int(t), category=c,
                             ids=tuple(seq_ids[seq_off[i]:seq_off[i + 1]].tolist()),
                             prompt_len=int(p))
                    for i, (k, t, c, p) in enumerate(zip(z["keys"].tolist(), z["turns"].tolist(),
                                                         z["categories"].tolist(),
                                                         z["prompt_lens"].tolist()))]
            for s, sha in zip(seqs, z["seq_sha"].tolist()):
                if s.sha256 != sha:
                    raise RunFolderError(f"baseline cache shard is corrupt (question {s.key} turn "
                                         f"{s.turn}); delete the folder to rebuild it", path=path)
            return Shard(name=path.name, uid=_meta(z)["uid"], seqs=seqs,
                         pos_offsets=z["pos_offsets"], logp=z["logp"],
                         ids=z["ids"] if "ids" in z.files else None, log_tail=z["log_tail"],
                         logp_target=z["logp_target"],
                         tail_ids=z["tail_ids"] if "tail_ids" in z.files else None,
                         tail_logp=z["tail_logp"] if "tail_logp" in z.files else None)

    def mean_tail_mass(self) -> float:
        """Mean over cached positions of the baseline's probability outside the top K."""
        total, n = 0.0, 0
        for path in self.shard_paths():
            with open_npz(path) as z:
                tail = np.exp(z["log_tail"].astype(np.float64))  # (N,), 0 for a full cache
            total, n = total + float(tail.sum()), n + len(tail)
        return total / n if n else float("nan")

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.shard_paths()) + (
            self.header_path.stat().st_size if self.header_path.is_file() else 0)


def payload_bytes_per_token(top_k: int | None, vocab_size: int, tail_samples: int = 0) -> int:
    """Bytes one scored position costs in the cache: K log-probs + K ids + tail + target, and
    an id + a log-prob per tail sample."""
    if top_k is None:
        return 4 * vocab_size + 8
    return (top_k + tail_samples) * (4 + id_dtype(vocab_size).itemsize) + 8


# --------------------------------------------------------------------------- per-token arrays

TOKEN_ARRAYS = ("token_ids", "kl", "same_top1", "dp", "nll_base", "nll_comp")
OPTIONAL_ARRAYS = ("reverse_kl", "jsd", "kl_bound")


@dataclass
class TokenArrays:
    """Per-token results of one role, concatenated over (question, turn) segments.

    Segment i covers positions offsets[i]:offsets[i+1] of every per-token array. ``p_base_tok`` and
    ``p_comp_tok`` are exp(-nll). ``meta`` records how they were computed (K, exact or bound).
    """

    keys: list[str]
    turns: np.ndarray  # (S,) int32
    categories: list[str]
    offsets: np.ndarray  # (S + 1,) int64
    token_ids: np.ndarray  # (N,) int32: the baseline's answer token at each position
    kl: np.ndarray  # (N,) float32, nats
    same_top1: np.ndarray  # (N,) bool
    dp: np.ndarray  # (N,) float32: p_comp(token) - p_base(token)
    nll_base: np.ndarray  # (N,) float32
    nll_comp: np.ndarray  # (N,) float32
    reverse_kl: np.ndarray | None = None
    jsd: np.ndarray | None = None
    kl_bound: np.ndarray | None = None  # (N,) float32: the top-K lower bound, when kl is estimated
    meta: dict | None = None

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    def segment(self, key: str, turn: int) -> slice:
        for i, (k, t) in enumerate(zip(self.keys, self.turns.tolist())):
            if k == key and t == turn:
                return slice(int(self.offsets[i]), int(self.offsets[i + 1]))
        raise KeyError(f"no segment for question {key} turn {turn}")

    def mask(self, segments: list[int]) -> np.ndarray:
        """Boolean (N,) mask selecting the positions of the given segment indices."""
        m = np.zeros(self.n_tokens, dtype=bool)
        for i in segments:
            m[self.offsets[i]:self.offsets[i + 1]] = True
        return m

    @classmethod
    def concat(cls, parts: list["TokenArrays"], meta: dict | None = None) -> "TokenArrays":
        lengths = [0] + [int(n) for p in parts for n in np.diff(p.offsets)]

        def cat(name: str) -> np.ndarray | None:
            arrays = [getattr(p, name) for p in parts]
            if not arrays or any(a is None for a in arrays):
                return None
            return np.concatenate(arrays)

        return cls(keys=[k for p in parts for k in p.keys],
                   turns=np.concatenate([p.turns for p in parts]).astype(np.int32)
                   if parts else np.zeros(0, np.int32),
                   categories=[c for p in parts for c in p.categories],
                   offsets=np.cumsum(lengths, dtype=np.int64),
                   **{name: (cat(name) if parts else np.zeros(0, np.float32))
                      for name in TOKEN_ARRAYS},
                   **{name: cat(name) for name in OPTIONAL_ARRAYS}, meta=meta)

    def select(self, segments: list[int]) -> "TokenArrays":
        """A new TokenArrays holding only the given segments, in the given order."""
        parts = []
        for i in segments:
            sl = slice(int(self.offsets[i]), int(self.offsets[i + 1]))
            parts.append(TokenArrays(
                keys=[self.keys[i]], turns=self.turns[i:i + 1], categories=[self.categories[i]],
                offsets=np.array([0, sl.stop - sl.start], dtype=np.int64),
                **{n: getattr(self, n)[sl] for n in TOKEN_ARRAYS},
                **{n: (getattr(self, n)[sl] if getattr(self, n) is not None else None)
                   for n in OPTIONAL_ARRAYS}))
        return TokenArrays.concat(parts, meta=self.meta)

    def save(self, path: Path) -> None:
        arrays = {"meta": np.array(json.dumps({"format_version": TOKENS_FORMAT_VERSION,
                                               **(self.meta or {})})),
                  "keys": np.array(self.keys, dtype=str), "turns": self.turns.astype(np.int32),
                  "categories": np.array(self.categories, dtype=str),
                  "offsets": self.offsets.astype(np.int64),
                  "token_ids": self.token_ids.astype(np.int32),
                  "same_top1": self.same_top1.astype(bool)}
        for name in ("kl", "dp", "nll_base", "nll_comp") + OPTIONAL_ARRAYS:
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name).astype(np.float32)
        _save_npz(path, arrays)

    @classmethod
    def load(cls, path: Path) -> "TokenArrays":
        if not path.is_file():
            raise RunFolderError("per-token divergence file not found; run `judge diverge` first",
                                 path=path)
        with open_npz(path) as z:
            meta = _meta(z)
            if meta.get("format_version") != TOKENS_FORMAT_VERSION:
                raise RunFolderError(f"per-token file format {meta.get('format_version')!r} is "
                                     "not supported; rerun `judge diverge`", path=path)
            return cls(keys=z["keys"].tolist(), turns=z["turns"], categories=z["categories"].tolist(),
                       offsets=z["offsets"], **{n: z[n] for n in TOKEN_ARRAYS},
                       **{n: (z[n] if n in z.files else None) for n in OPTIONAL_ARRAYS}, meta=meta)
