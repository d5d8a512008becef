"""The two model passes of the divergence stage, each alone in memory (see `judge.diverge.stage`).

`answer_logits` runs a model over teacher-forced sequences in length-sorted, left-padded batches
and yields only the logits of answer positions. `baseline_spec` turns them into cache shards;
`compressed_spec` scores one part per cache shard (``RUN/divergence/<role>.parts/<cache>/<shard>``), so
both passes resume where an interrupted run stopped. A part records the shard's uid and the
options that made it, and is recomputed when either changes.
"""

from __future__ import annotations

import functools
import gc
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from judge.diverge.cache import BaselineCache, CacheHeader, Sequence, TokenArrays, open_npz
from judge.errors import RunFolderError, TokenizerMismatchError
from judge.executors import Executor, Shared, WorkSpec
from judge.schemas import ModelInfo

if TYPE_CHECKING:
    from judge.diverge.options import DivergeOptions



def answer_logits(model: Any, device: Any, seqs: list[Sequence], batch_tokens: int
                  ) -> Iterator[tuple[int, Any]]:
    """Yield (index, logits (n_answer, V)) for each sequence; batches of similar length, left
    padded (with position ids from the mask) so every row's answer ends in the last columns, and
    only the last max(n_answer) + 1 logits computed (``logits_to_keep``)."""
    import inspect

    import torch

    params = inspect.signature(model.forward).parameters
    keep_kw = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i].ids), i))
    batches: list[list[int]] = []
    for i in order:  # ascending length: the newest sequence is the widest
        if batches and (len(batches[-1]) + 1) * len(seqs[i].ids) <= batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    for batch in batches:
        width = max(len(seqs[i].ids) for i in batch)
        keep = max(seqs[i].n_answer for i in batch) + 1
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(seqs[i].ids):] = torch.tensor(seqs[i].ids, dtype=torch.long)
            mask[row, width - len(seqs[i].ids):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        kwargs = {keep_kw: keep} if keep_kw else {}
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           position_ids=positions.to(device), use_cache=False, **kwargs).logits
        last = logits.shape[1] - 1  # the final column predicts past the sequence: unused
        for row, i in enumerate(batch):
            yield i, logits[row, last - seqs[i].n_answer:last]
        del logits


def _free(model: Any) -> None:
    import torch

    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _by_question_chunks(seqs: list[Sequence], per_chunk: int) -> list[list[Sequence]]:
    keys = list(dict.fromkeys(s.key for s in seqs))
    chunks = [set(keys[i:i + per_chunk]) for i in range(0, len(keys), per_chunk)]
    return [[s for s in seqs if s.key in c] for c in chunks]


class CacheWorker:
    """Picklable factory of the baseline pass's worker: loads the baseline model once."""

    def __init__(self, model_info: ModelInfo, options: DivergeOptions):
        self.model_info, self.options = model_info, options

    def __call__(self) -> _CacheRows:
        from judge.generate import load_hf_model

        return _CacheRows(*load_hf_model(self.model_info.path, self.options.engine_options()),
                          self.options)


class _CacheRows:
    def __init__(self, model: Any, device: Any, options: DivergeOptions):
        self.model, self.device, self.options = model, device, options

    def run(self, chunk: list[Sequence]) -> tuple[int, dict[str, np.ndarray | None]]:
        """(vocabulary size, the cache rows of ``chunk`` concatenated in its order)."""
        import torch

        from judge.diverge.kl import tail_seed, topk_cache

        o = self.options
        rows: dict[int, dict[str, np.ndarray]] = {}
        vocab = 0
        for i, logits in answer_logits(self.model, self.device, chunk, o.batch_tokens):
            vocab = logits.shape[-1]
            tgt = torch.tensor(chunk[i].targets, dtype=torch.long, device=logits.device)
            r = topk_cache(logits, tgt, o.top_k, n_tail_samples=o.n_tail_samples,
                           seed=tail_seed(chunk[i].key, chunk[i].turn))
            rows[i] = {k: None if getattr(r, k) is None else getattr(r, k).cpu().numpy()
                       for k in ("logp", "log_tail", "logp_target", "ids", "tail_ids", "tail_logp")}
        order = range(len(chunk))
        return vocab, {k: (None if rows[0][k] is None else np.concatenate([rows[i][k] for i in order]))
                       for k in rows[0]}

    def close(self) -> None:
        _free(self.model)
        self.model = None


def baseline_spec(cache: BaselineCache, todo: list[Sequence], model_info: ModelInfo,
                  identity: tuple[str, str], options: DivergeOptions) -> WorkSpec:
    """The baseline pass as a `WorkSpec`: one cache shard written per question chunk."""
    chunks = _by_question_chunks(todo, options.chunk_questions)

    def on_result(j: int, result: tuple[int, dict[str, np.ndarray | None]]) -> tuple[int, int]:
        vocab, cat = result
        chunk = chunks[j]
        head = cache.header()
        if head is None:
            cache.write_header(CacheHeader(
                top_k=options.top_k, tail_samples=options.n_tail_samples, vocab_size=vocab,
                tokenizer_sha256=identity[0], vocab_sha256=identity[1],
                baseline_spec=model_info.spec, baseline_fingerprint=model_info.fingerprint,
                dtype=options.dtype, created=time.time()))
        elif head.vocab_size != vocab:
            raise TokenizerMismatchError(f"baseline logits have {vocab} entries, the cache "
                                         f"{head.vocab_size}", path=cache.root)
        cache.write_shard(chunk, cat["logp"], cat["ids"], cat["log_tail"], cat["logp_target"],
                          vocab, tail_ids=cat["tail_ids"], tail_logp=cat["tail_logp"])
        return len(chunk), sum(s.n_answer for s in chunk)

    return WorkSpec(name="diverge baseline", label="diverge: baseline cache",
                    worker=CacheWorker(model_info, options), items=chunks, on_result=on_result,
                    total=len(todo), gpus=options.gpus_per_model)


def baseline_pass(cache: BaselineCache, todo: list[Sequence], model_info: ModelInfo,
                  identity: tuple[str, str], options: DivergeOptions, progress: bool,
                  executor: Executor | None = None) -> None:
    """Compute the cache rows of ``todo`` with the baseline model, one shard per question chunk."""
    from judge.executors import LocalExecutor

    (executor or LocalExecutor()).run([baseline_spec(cache, todo, model_info, identity, options)],
                                      label="diverge", progress=progress)


def _part_is_valid(path: Path, shard_uid: str, signature: dict) -> bool:
    if not path.is_file():
        return False
    try:
        meta = TokenArrays.load(path).meta or {}
    except (RunFolderError, OSError, ValueError, KeyError):
        return False
    return meta.get("shard_uid") == shard_uid and meta.get("signature") == signature


class ScoreWorker:
    """Picklable factory of a compressed pass's worker: loads the compressed model once."""

    def __init__(self, model_info: ModelInfo, options: DivergeOptions, vocab_size: int,
                 signature: dict):
        self.model_info, self.options = model_info, options
        self.vocab_size, self.signature = vocab_size, signature

    def __call__(self) -> _Scorer:
        from judge.generate import load_hf_model

        return _Scorer(self, *load_hf_model(self.model_info.path, self.options.engine_options()))


class _Scorer:
    def __init__(self, f: ScoreWorker, model: Any, device: Any):
        self.f, self.model, self.device = f, model, device

    def run(self, shard: Any) -> TokenArrays:
        """The part of one cache shard: per-token divergence of every sequence in it."""
        import torch

        from judge.diverge.kl import CacheRows, divergence_from_cache

        o, info = self.f.options, self.f.model_info
        results: dict[int, dict[str, np.ndarray]] = {}
        for i, logits in answer_logits(self.model, self.device, shard.seqs, o.batch_tokens):
            if logits.shape[-1] != self.f.vocab_size:
                raise TokenizerMismatchError(
                    f"model {info.spec!r} has {logits.shape[-1]} logits per token, "
                    f"the baseline {self.f.vocab_size}: not the same vocabulary")
            lo, hi = int(shard.pos_offsets[i]), int(shard.pos_offsets[i + 1])
            dev = logits.device

            def t(a: np.ndarray | None) -> Any:
                return None if a is None else torch.from_numpy(
                    np.ascontiguousarray(a[lo:hi])).to(dev)

            ids = t(shard.ids)
            ids = None if ids is None else ids.to(torch.int64)
            logp = t(shard.logp)
            top1 = ids[:, 0] if ids is not None else logp.argmax(dim=-1)
            tail_ids = t(shard.tail_ids)
            rows = CacheRows(logp=logp, ids=ids, log_tail=t(shard.log_tail),
                             logp_target=t(shard.logp_target), top1=top1,
                             tail_ids=None if tail_ids is None else tail_ids.to(torch.int64),
                             tail_logp=t(shard.tail_logp))
            tgt = torch.tensor(shard.seqs[i].targets, dtype=torch.long, device=dev)
            out = divergence_from_cache(rows, logits, tgt, reverse=o.reverse, jsd=o.jsd)
            results[i] = {k: v.cpu().numpy() for k, v in out.items()}
            results[i]["token_ids"] = np.asarray(shard.seqs[i].targets, dtype=np.int32)
        return TokenArrays.concat([_one_segment(s, results[i]) for i, s in enumerate(shard.seqs)],
                                  meta={"shard_uid": shard.uid, "signature": self.f.signature})

    def close(self) -> None:
        _free(self.model)
        self.model = None


def compressed_spec(cache: BaselineCache, parts_dir: Path, model_info: ModelInfo, vocab_size: int,
                    signature: dict, options: DivergeOptions, role: str) -> WorkSpec:
    """A compressed pass as a `WorkSpec`: one part per cache shard without a valid part for it.
    Shards are `Shared` items: read once, and on Ray stored once for every candidate."""
    todo = []
    for path in cache.shard_paths():
        with open_npz(path, "delete the baseline cache folder and rerun `judge diverge`") as z:
            uid, n, n_tokens = (json.loads(str(z["meta"][()]))["uid"], len(z["keys"]),
                                int(z["pos_offsets"][-1]) if "pos_offsets" in z else 0)
        if not _part_is_valid(parts_dir / path.name, uid, signature):
            todo.append((path, n, n_tokens))

    def on_result(j: int, part: TokenArrays) -> tuple[int, int]:
        path, n, n_tokens = todo[j]
        part.save(parts_dir / path.name)
        return n, n_tokens

    return WorkSpec(name=f"diverge {role}", label=f"diverge: {role}",
                    worker=ScoreWorker(model_info, options, vocab_size, signature),
                    items=[Shared(f"{cache.root}/{p.name}", functools.partial(cache.read_shard, p))
                           for p, _, _ in todo],
                    on_result=on_result, total=sum(n for _, n, _ in todo),
                    gpus=options.gpus_per_model)


def _one_segment(seq: Sequence, r: dict[str, np.ndarray]) -> TokenArrays:
    return TokenArrays(keys=[seq.key], turns=np.array([seq.turn], dtype=np.int32),
                       categories=[seq.category], offsets=np.array([0, seq.n_answer], dtype=np.int64),
                       token_ids=r["token_ids"], kl=r["kl"], same_top1=r["same_top1"], dp=r["dp"],
                       nll_base=r["nll_base"], nll_comp=r["nll_comp"], reverse_kl=r.get("reverse_kl"),
                       jsd=r.get("jsd"), kl_bound=r.get("kl_bound"))
