"""The divergence stage: teacher-force the baseline's own conversations through both models.

For every baseline answer and turn t, the sequence is the chat-templated prompt of turn t (the
question's turns and the baseline's earlier answers, exactly as `judge.generate.chat.prompt_ids` built it
during generation) followed by the baseline's generated ids. Each answer position is scored:
KL(P_baseline ‖ P_compressed) over the vocabulary, top-1 agreement, Δp of the actual token and both
NLLs (see `judge.diverge.kl`).

Two passes that never hold both models in memory:
  1. **baseline pass** -> ``RUN/divergence/baseline.k<K>.cache/`` (`judge.diverge.cache`):
     top-K log-probs + ids + log tail mass + S tokens drawn from the tail per position, written
     once, shard by shard, and reused by every compressed model. The reported KL is the top-K lower
     bound plus an unbiased estimate of the divergence inside the tail from those samples (the
     bound is reported too); ``--tail-samples 0`` reports the bound alone and ``--top-k full``
     keeps every log-prob (exact KL).
  2. **compressed pass**, per role -> ``RUN/divergence/<role>.parts/<cache>/`` (a part per shard,
     so an interrupted pass resumes), merged at the end into ``<role>.jsonl`` (`TurnDivergence`
     per question and turn), ``<role>.tokens.npz`` (per-token arrays) and ``<role>.summary.json``
     (`DivergenceSummary`: overall, per turn, per category, per question; llama.cpp's statistics).

Refuses, with one line, when the tokenizers differ, when the cache belongs to another tokenizer or
other sequences, or when the baseline answers (with their token ids) are missing.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

from judge.diverge.options import DivergeOptions
from judge.diverge.cache import (LLAMA_CPP_BYTES_PER_VOCAB, BaselineCache, Sequence, TokenArrays,
                                    payload_bytes_per_token, sequences_sha256)
from judge.diverge.summary import (CacheInfo, DivergenceSummary, KLKind, grouped_summaries,
                                      summarize, turn_rows)
from judge.executors import Executor, WorkSpec
from judge.errors import EngineError, ModelSpecError, RunFolderError, TokenizerMismatchError
from judge.schemas import Answer, ModelInfo, Question, TurnDivergence
from judge.store import Run, read_jsonl, write_atomic


@dataclass(frozen=True)
class DivergeResult:
    role: str
    jsonl_path: Path
    tokens_path: Path
    summary_path: Path
    summary: DivergenceSummary
    cached_now: int  # sequences added to the baseline cache by this call
    scored_now: int  # sequences scored for this role by this call
    seconds: float


# --------------------------------------------------------------------------- sequences & tokenizers


def baseline_sequences(run: Run, tokenizer: Any) -> tuple[list[Sequence], list[Question]]:
    """The teacher-forced sequences of every baseline answer, in question order, turn by turn."""
    from judge.generate import conversation, prompt_ids
    from judge.questions import run_questions

    questions = run_questions(run)
    manifest = run.load_manifest()  # run_questions has checked it names the question set
    path = run.answers_path("baseline")
    if not path.is_file():
        raise RunFolderError("no baseline answers: run `judge generate --role baseline` first",
                             path=path)
    answers = {a.key: a for a in read_jsonl(path, Answer)}
    unknown = sorted(set(answers) - {q.key for q in questions})
    if unknown:
        raise RunFolderError(f"answer to question {unknown[0]} is not in the run's question set",
                             path=path)
    recorded = manifest.config.get("generate:baseline")
    gen = recorded.get("generation") if isinstance(recorded, dict) else manifest.config.get("generation")
    system_prompt = gen.get("system_prompt") if isinstance(gen, dict) else None
    seqs: list[Sequence] = []
    for q in questions:
        a = answers.get(q.key)
        if a is None:
            continue
        if a.token_ids is None or a.prompt_token_counts is None:
            raise RunFolderError(f"baseline answer to question {q.key} has no token ids (imported "
                                 "answers?); regenerate it with `judge generate`", path=path)
        if len(a.token_ids) != len(q.turns) or len(a.turns) != len(q.turns):
            raise RunFolderError(f"baseline answer to question {q.key} has {len(a.token_ids)} "
                                 f"turns, the question {len(q.turns)}", path=path)
        for t in range(len(q.turns)):
            prompt = prompt_ids(tokenizer, conversation(q.turns, a.turns[:t], system_prompt))
            if len(prompt) != a.prompt_token_counts[t]:
                raise RunFolderError(
                    f"question {q.key} turn {t + 1}: the chat template now gives {len(prompt)} "
                    f"prompt tokens, generation used {a.prompt_token_counts[t]}; the template, "
                    "tokenizer or question changed: regenerate the answers", path=path)
            seqs.append(Sequence(key=q.key, turn=t + 1, category=q.category,
                                 ids=tuple(prompt + list(a.token_ids[t])), prompt_len=len(prompt)))
    if not seqs:
        raise RunFolderError("the baseline answers file is empty", path=path)
    return seqs, questions


def tokenizer_identity(model_path: str) -> tuple[str, str, Any]:
    """(tokenizer sha256, vocabulary sha256, tokenizer) of a checkpoint folder."""
    from transformers import AutoTokenizer

    from judge.models import tokenizer_sha256

    try:
        tok = AutoTokenizer.from_pretrained(model_path)
    # no tokenizer files, or files transformers cannot read; the Rust tokenizers library raises a
    # plain Exception for a malformed tokenizer.json
    except Exception as err:  # noqa: BLE001
        raise ModelSpecError(f"cannot load a tokenizer from {model_path}: "
                             f"{' '.join(str(err).split())[:300]}") from None
    vocab = json.dumps(sorted(tok.get_vocab().items()), ensure_ascii=False)
    vocab_sha = hashlib.sha256(vocab.encode("utf-8")).hexdigest()
    return tokenizer_sha256(Path(model_path)) or vocab_sha, vocab_sha, tok


def check_same_tokenizer(role: str, base: tuple[str, str], comp: tuple[str, str], spec: str) -> None:
    """Refuse to compare logits of models whose vocabularies or tokenizer files differ."""
    if comp[1] != base[1]:
        raise TokenizerMismatchError(f"{role} model {spec!r} has another vocabulary than the "
                                     "baseline; logits can only be compared over the same tokens")
    if comp[0] != base[0]:
        raise TokenizerMismatchError(f"{role} model {spec!r} has another tokenizer than the "
                                     f"baseline (hash {comp[0][:12]} vs {base[0][:12]}); "
                                     "divergence needs the same tokenizer")


# --------------------------------------------------------------------------- the stage


def output_paths(run: Run, role: str) -> tuple[Path, Path, Path]:
    d = run.divergence_dir
    return d / f"{role}.jsonl", d / f"{role}.tokens.npz", d / f"{role}.summary.json"


def _roles(run: Run, roles: list[str] | None) -> dict[str, ModelInfo]:
    manifest = run.load_manifest()
    models = manifest.models if manifest else {}
    if "baseline" not in models:
        raise RunFolderError("the run has no baseline model: run `judge generate --role baseline` "
                             "first", path=run.manifest_path)
    wanted = roles or sorted(r for r in models if r.startswith("compressed"))
    if not wanted:
        raise RunFolderError("the run has no compressed model: generate with `--role compressed` "
                             "or pass --role", path=run.manifest_path)
    missing = [r for r in wanted if r not in models or r == "baseline"]
    if missing:
        raise RunFolderError(f"role {missing[0]!r} is not a model of this run (roles: "
                             f"{', '.join(sorted(models))})", path=run.manifest_path)
    return {r: models[r] for r in wanted}


def diverge(run: Run, roles: list[str] | None = None, options: DivergeOptions = DivergeOptions(),
            progress: bool = True, executor: Executor | None = None) -> list[DivergeResult]:
    """Run the divergence stage for ``roles`` (default: every compressed role of the run) through
    ``executor`` (default: local): the baseline's cache first, then every candidate's pass."""
    from judge.diverge.loadcheck import check_loadable
    from judge.diverge.passes import baseline_spec, compressed_spec
    from judge.executors import LocalExecutor

    t_start = time.perf_counter()
    targets = _roles(run, roles)
    if options.device and options.device.startswith("cuda"):
        from judge.generate import cuda_available

        if not cuda_available():
            raise EngineError(f"--device {options.device}: no CUDA device is available here; use "
                              "--device cpu (or leave it out)")
    run.check_folders(run.divergence_dir, run.logs_dir)
    baseline = run.load_manifest().models["baseline"]  # type: ignore[union-attr]
    base_sha, base_vocab, tokenizer = tokenizer_identity(baseline.path)
    for info in (baseline, *targets.values()):  # refuse before any model is loaded
        check_loadable(info, device_map=options.device_map, dtype=options.dtype)
    for role, info in targets.items():
        comp_sha, comp_vocab, _ = tokenizer_identity(info.path)
        check_same_tokenizer(role, (base_sha, base_vocab), (comp_sha, comp_vocab), info.spec)
    seqs, questions = baseline_sequences(run, tokenizer)
    cache = BaselineCache(run.divergence_dir / BaselineCache.folder_name(
        options.top_k, options.n_tail_samples))
    cache.check_header(tokenizer_sha256=base_sha, vocab_sha256=base_vocab,
                       baseline_fingerprint=baseline.fingerprint)
    todo = cache.check_sequences(seqs)
    executor = executor or LocalExecutor()
    if todo:
        run.mark_stage("diverge:baseline", started=True)
        spec = baseline_spec(cache, todo, baseline, (base_sha, base_vocab), options)
        spec.log = (run.logs_dir, "diverge-baseline")
        executor.run([spec], label="diverge", progress=progress)
        run.mark_stage("diverge:baseline", finished=True)
    header = cache.header()
    if header is None:
        raise RunFolderError("baseline cache has shards but no header.json; delete the folder to "
                             "rebuild it", path=cache.root)
    cache_time = time.perf_counter() - t_start
    ids = {q.key: q.question_id for q in questions}
    # every candidate's pass through the executor at once: side by side on Ray, one after another
    # locally; each spec's own start and end times are its seconds
    specs: dict[str, tuple[WorkSpec, Path, dict[str, float]]] = {}
    for role, info in targets.items():
        run.mark_stage(f"diverge:{role}", started=True)
        signature = {"top_k": options.top_k, "tail_samples": options.n_tail_samples,
                     "reverse": options.reverse, "jsd": options.jsd,
                     "dtype": options.dtype, "model": info.spec,
                     "fingerprint": info.fingerprint.model_dump(mode="json")
                     if info.fingerprint else None}
        parts_dir = run.divergence_dir / f"{role}.parts" / cache.root.name
        spec = compressed_spec(cache, parts_dir, info, header.vocab_size, signature, options, role)
        spec.log = (run.logs_dir, f"diverge-{role}")
        times = {"start": 0.0, "end": 0.0}
        spec.on_start = _stamp(times, "start")
        spec.on_done = _stamp(times, "end")
        specs[role] = (spec, parts_dir, times)
    executor.run([spec for spec, _, _ in specs.values()], label="diverge", progress=progress)
    results = []
    for role, info in targets.items():
        spec, parts_dir, times = specs[role]
        t0 = time.perf_counter()
        arrays = _merge_parts(cache, parts_dir, seqs, role, info, options)
        seconds = (times["end"] - times["start"] + time.perf_counter() - t0
                   + (cache_time if not results else 0.0))
        summary = _write_outputs(run, role, arrays, ids, baseline, info, options, cache, header,
                                 seqs, seconds)
        run.mark_stage(f"diverge:{role}", finished=True)
        results.append(DivergeResult(role, *output_paths(run, role), summary=summary,
                                     cached_now=len(todo) if not results else 0,
                                     scored_now=spec.total, seconds=seconds))
    return results


def _stamp(times: dict[str, float], key: str) -> Callable[[], None]:
    def stamp() -> None:
        times[key] = time.perf_counter()
    return stamp


def _merge_parts(cache: BaselineCache, parts_dir: Path, seqs: list[Sequence], role: str,
                 info: ModelInfo, options: DivergeOptions) -> TokenArrays:
    """The per-token arrays of ``seqs``, in their order, gathered from the role's parts."""
    parts = [TokenArrays.load(parts_dir / p.name) for p in cache.shard_paths()]
    where = {(k, int(t)): (j, i) for j, part in enumerate(parts)
             for i, (k, t) in enumerate(zip(part.keys, part.turns.tolist()))}
    pieces = []
    for s in seqs:
        j, i = where[(s.key, s.turn)]
        pieces.append(parts[j].select([i]))
    kind = _kl_kind(options)
    return TokenArrays.concat(pieces, meta={
        "role": role, "compressed": info.spec, "top_k": options.top_k,
        "tail_samples": options.n_tail_samples, "kl_kind": kind[0], "reverse_jsd_kind": kind[1]})


def _kl_kind(options: DivergeOptions) -> tuple[KLKind, str | None]:
    if options.top_k is None:
        kind: KLKind = "exact"
    elif options.n_tail_samples:
        kind = "top-k + tail estimate"
    else:
        kind = "top-k lower bound"
    extra = None if not (options.reverse or options.jsd) else (
        "bucketed lower bound" if kind == "top-k lower bound" else kind)
    return kind, extra


def _write_outputs(run: Run, role: str, arrays: TokenArrays, ids: dict[str, int | str],
                   baseline: ModelInfo, info: ModelInfo, options: DivergeOptions,
                   cache: BaselineCache, header: Any, seqs: list[Sequence],
                   seconds: float) -> DivergenceSummary:
    jsonl, tokens, summary_path = output_paths(run, role)
    n_tokens = arrays.n_tokens
    size = cache.size_bytes()
    bpt = size / n_tokens if n_tokens else float("nan")
    llama = LLAMA_CPP_BYTES_PER_VOCAB * header.vocab_size
    cache_info = CacheInfo(
        path=str(cache.root), top_k=header.top_k, vocab_size=header.vocab_size,
        n_sequences=len(seqs), n_tokens=n_tokens, bytes=size, bytes_per_token=bpt,
        tail_samples=header.tail_samples,
        payload_bytes_per_token=payload_bytes_per_token(header.top_k, header.vocab_size,
                                                        header.tail_samples),
        llama_cpp_bytes_per_token=llama, times_smaller_than_llama_cpp=llama / bpt,
        mean_tail_mass=cache.mean_tail_mass(), sequences_sha256=sequences_sha256(seqs),
        format_version=header.format_version)
    kind, extra = _kl_kind(options)
    turns = [str(int(t)) for t in arrays.turns.tolist()]
    summary = DivergenceSummary(
        role=role, baseline=baseline.spec, compressed=info.spec, top_k=options.top_k,
        kl_kind=kind, reverse_jsd_kind=extra, dtype=options.dtype,  # type: ignore[arg-type]
        cache=cache_info, overall=summarize(arrays),
        per_turn=dict(sorted(grouped_summaries(arrays, turns).items(), key=lambda kv: int(kv[0]))),
        per_category=grouped_summaries(arrays, arrays.categories),
        per_question=grouped_summaries(arrays, arrays.keys), seconds=seconds)
    arrays.save(tokens)
    rows = turn_rows(arrays, role, ids)
    write_atomic(jsonl, "".join(r.model_dump_json() + "\n" for r in rows))
    write_atomic(summary_path, summary.model_dump_json(indent=2) + "\n")
    return summary


def load_divergence(run: Run, role: str) -> tuple[list[TurnDivergence], TokenArrays]:
    """What the report needs for a role: the per-(question, turn) rows and the per-token arrays."""
    jsonl, tokens, _ = output_paths(run, role)
    if not jsonl.is_file():
        raise RunFolderError(f"no divergence results for {role!r}: run `judge diverge` first",
                             path=jsonl)
    return read_jsonl(jsonl, TurnDivergence), TokenArrays.load(tokens)


def load_summary(run: Run, role: str) -> DivergenceSummary:
    path = output_paths(run, role)[2]
    if not path.is_file():
        raise RunFolderError(f"no divergence summary for {role!r}: run `judge diverge` first",
                             path=path)
    return DivergenceSummary.model_validate_json(path.read_text(encoding="utf-8"))
