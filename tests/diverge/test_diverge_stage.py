"""The divergence stage end to end on the embedded models (real weights, real chat template).

One run folder per module: two two-turn questions answered greedily by smollm2-135m, with the
model itself and its int8 / int4 / drop4 variants registered as compressed roles.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from judge.config import EngineOptions, GenerationConfig
from judge.diverge.stage import (DivergeOptions, baseline_sequences, diverge, load_divergence,
                              load_summary, tokenizer_identity)
from judge.diverge.cache import BaselineCache
from judge.errors import ModelSpecError, RunFolderError, TokenizerMismatchError
from judge.schemas import Answer
from judge.store import Run, read_jsonl, write_atomic

pytestmark = pytest.mark.slow

ROLES = {"compressed-self": "smollm2-135m", "compressed-int8": "smollm2-135m-int8",
         "compressed-int4": "smollm2-135m-int4", "compressed-drop4": "smollm2-135m-drop4"}
OPTS = DivergeOptions(dtype="float32", chunk_questions=1)  # two shards: one per question


@pytest.fixture(scope="module")
def answered(tmp_path_factory, base_model) -> Run:
    from judge.generate.stage import generate
    from judge.models.registry import resolve_model
    from judge.questions import load_questions

    root = tmp_path_factory.mktemp("diverge")
    qfile = root / "q.jsonl"
    qfile.write_text(
        '{"question_id": 1, "category": "stem", "turns": ["Why is the sky blue?", '
        '"Explain it to a child."]}\n'
        '{"question_id": "w2", "category": "writing", "turns": ["Write a haiku about rain.", '
        '"Now one about snow."]}\n', encoding="utf-8")
    run = Run(root / "run")
    info, questions = load_questions(qfile)
    generate(run, base_model, questions, info, role="baseline",
             gen=GenerationConfig(max_new_tokens=24),
             engine_options=EngineOptions(engine="hf", dtype="float32"), progress=False)
    run.update_manifest(models={role: resolve_model(name) for role, name in ROLES.items()})
    return run


@pytest.fixture(scope="module")
def k64(answered):
    results = diverge(answered, list(ROLES), OPTS, progress=False)
    arrays = {r.role: load_divergence(answered, r.role)[1] for r in results}
    return {r.role: r for r in results}, arrays


@pytest.fixture(scope="module")
def exact_int4(answered, k64):
    opts = OPTS.model_copy(update={"top_k": None})
    (res,) = diverge(answered, ["compressed-int4"], opts, progress=False)
    return res, load_divergence(answered, "compressed-int4")[1]


def test_sequences_are_the_generation_prompts(answered):
    from judge.generate.chat import conversation, prompt_ids

    _, _, tok = tokenizer_identity(answered.load_manifest().models["baseline"].path)
    seqs, questions = baseline_sequences(answered, tok)
    answers = {a.key: a for a in read_jsonl(answered.answers_path("baseline"), Answer)}
    assert [(s.key, s.turn) for s in seqs] == [("1", 1), ("1", 2), ("w2", 1), ("w2", 2)]
    for s in seqs:
        a, q = answers[s.key], next(q for q in questions if q.key == s.key)
        prompt = prompt_ids(tok, conversation(q.turns, a.turns[:s.turn - 1]))
        assert list(s.ids) == prompt + a.token_ids[s.turn - 1]
        assert s.prompt_len == a.prompt_token_counts[s.turn - 1] == len(prompt)
    turn2 = tok.decode(list(seqs[1].ids[:seqs[1].prompt_len]))
    assert answers["1"].turns[0][:20] in turn2  # turn 2 is asked after the baseline's own answer


def test_kl_orders_the_variants_and_self_is_zero(answered, k64):
    results, arrays = k64
    kl = {role: results[role].summary.overall.kl_mean for role in ROLES}
    assert kl["compressed-self"] == 0.0
    assert 0 < kl["compressed-int8"] < kl["compressed-int4"] < kl["compressed-drop4"]
    self_stats = results["compressed-self"].summary.overall
    assert self_stats.same_top1 == 1.0 and self_stats.kl_max == 0.0 and self_stats.dp_rms == 0.0
    assert self_stats.log_ppl_ratio == 0.0
    assert results["compressed-drop4"].summary.overall.same_top1 < 1.0
    n_tokens = sum(len(a.token_ids[0]) + len(a.token_ids[1])
                   for a in read_jsonl(answered.answers_path("baseline"), Answer))
    assert all(r.summary.overall.n_tokens == n_tokens for r in results.values())


def test_output_files_agree(answered, k64):
    results, arrays = k64
    res = results["compressed-int4"]
    rows, tokens = load_divergence(answered, "compressed-int4")
    assert [(str(r.question_id), r.turn) for r in rows] == [("1", 1), ("1", 2), ("w2", 1), ("w2", 2)]
    assert rows[0].question_id == 1 and rows[0].category == "stem"  # the question's own id type
    for r in rows:  # each row's statistics are those of its segment of the per-token arrays
        sl = tokens.segment(str(r.question_id), r.turn)
        assert r.stats.n_tokens == sl.stop - sl.start
        assert r.stats.kl_mean == pytest.approx(float(tokens.kl[sl].astype(np.float64).mean()))
        assert r.stats.same_top1 == pytest.approx(float(tokens.same_top1[sl].mean()))
    answers = {a.key: a for a in read_jsonl(answered.answers_path("baseline"), Answer)}
    assert tokens.token_ids[tokens.segment("w2", 2)].tolist() == answers["w2"].token_ids[1]
    summary = load_summary(answered, "compressed-int4")
    assert summary == res.summary
    assert set(summary.per_turn) == {"1", "2"} and set(summary.per_category) == {"stem", "writing"}
    assert set(summary.per_question) == {"1", "w2"}
    assert summary.per_turn["1"].n_tokens + summary.per_turn["2"].n_tokens == tokens.n_tokens
    cache = summary.cache
    # 64 top + 16 tail samples, an id (uint16) and a float32 log-prob each, + tail mass + target
    assert cache.payload_bytes_per_token == (64 + 16) * 6 + 8
    assert cache.llama_cpp_bytes_per_token == 98304 and cache.tail_samples == 16
    assert cache.times_smaller_than_llama_cpp >= 100  # whole folder, sequences and headers included
    assert summary.kl_kind == "top-k + tail estimate"
    assert summary.overall.kl_bound_mean == pytest.approx(
        float(tokens.kl_bound.astype(np.float64).mean()))
    assert summary.overall.kl_bound_mean < summary.overall.kl_mean


def test_k64_bound_and_estimate_against_exact_kl(k64, exact_int4):
    _, arrays = k64
    res, exact = exact_int4
    cached = arrays["compressed-int4"]
    assert res.summary.kl_kind == "exact" and res.summary.cache.top_k is None
    assert res.summary.cache.mean_tail_mass == 0.0 and exact.kl_bound is None
    assert cached.keys == exact.keys and (cached.token_ids == exact.token_ids).all()
    assert (cached.kl_bound <= exact.kl + 1e-5).all()  # a lower bound at every token
    assert (cached.kl >= cached.kl_bound).all()  # the tail estimate only adds
    # SmolLM2-135M is a flat model (a few % of the mass outside its top 64), so the K = 64 bound
    # reads 5-15% low on int4: it misses p_tail x the divergence inside the tail
    exact_mean = exact.kl.astype(np.float64).mean()
    bound_ratio = cached.kl_bound.astype(np.float64).mean() / exact_mean
    assert 0.8 < bound_ratio < 0.99
    for name in ("same_top1", "nll_base", "nll_comp", "dp"):  # exact whatever K
        np.testing.assert_allclose(getattr(cached, name), getattr(exact, name), atol=1e-6)


def _log_softmax64(x: np.ndarray) -> np.ndarray:
    x = x - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


def test_stage_matches_an_independent_plain_forward(answered, k64, exact_int4):
    """Unpadded forward passes of both models; exact KL, the K = 64 bound and its gap in float64."""
    import torch
    from transformers import AutoModelForCausalLM

    _, exact = exact_int4
    cached = k64[1]["compressed-int4"]
    manifest = answered.load_manifest()
    _, _, tok = tokenizer_identity(manifest.models["baseline"].path)
    seq = baseline_sequences(answered, tok)[0][1]  # question 1, turn 2
    logp = []
    for role in ("baseline", "compressed-int4"):
        model = AutoModelForCausalLM.from_pretrained(manifest.models[role].path, dtype=torch.float32)
        with torch.inference_mode():
            logits = model(torch.tensor([seq.ids])).logits[0].double().numpy()  # (L, V)
        logp.append(_log_softmax64(logits[seq.prompt_len - 1:len(seq.ids) - 1]))  # (n, V)
    lp, lq = logp
    p, q = np.exp(lp), np.exp(lq)
    kl = (p * (lp - lq)).sum(1)  # (n,)
    seg = exact.segment("1", 2)
    np.testing.assert_allclose(exact.kl[seg], kl, rtol=2e-3, atol=2e-5)
    rows = np.arange(seq.n_answer)
    np.testing.assert_allclose(exact.nll_comp[seg], -lq[rows, list(seq.targets)], rtol=1e-3,
                               atol=1e-4)
    # the K = 64 bound = exact - p_tail * KL(p | tail ‖ q | tail): the identity, per token
    top = np.argsort(-lp, axis=1)[:, :64]  # (n, 64)
    tail = np.ones_like(p, dtype=bool)
    np.put_along_axis(tail, top, False, axis=1)
    p_t, q_t = (p * tail).sum(1), (q * tail).sum(1)  # (n,)
    within = (np.where(tail, p * (lp - lq), 0).sum(1) / p_t) - np.log(p_t / q_t)  # KL(p̃ ‖ q̃)
    np.testing.assert_allclose(cached.kl_bound[cached.segment("1", 2)], kl - p_t * within,
                               rtol=2e-3, atol=5e-5)
    assert (within >= -1e-9).all() and (p_t > 1e-4).any()  # the identity is not vacuous here


def test_rerun_resumes_and_skips(answered, k64):
    cache = BaselineCache(answered.divergence_dir / "baseline.k64s16.cache")
    shards = cache.shard_paths()
    assert len(shards) == 2
    before = load_divergence(answered, "compressed-int8")[1]
    (res,) = diverge(answered, ["compressed-int8"], OPTS, progress=False)
    assert res.cached_now == 0 and res.scored_now == 0  # everything was there
    shards[1].unlink()  # lose the second question's shard: its part is stale too
    (res,) = diverge(answered, ["compressed-int8"], OPTS, progress=False)
    assert res.cached_now == 2 and res.scored_now == 2
    after = load_divergence(answered, "compressed-int8")[1]
    np.testing.assert_array_equal(before.kl, after.kl)  # same batches, same numbers
    assert before.keys == after.keys


def test_cli_prints_the_table(answered, k64, capsys):
    from judge.cli import main

    main(["diverge", str(answered.root), "--role", "compressed-int4", "--no-progress"])
    out = capsys.readouterr().out
    assert "mean KL" in out and "same top-1 %" in out and "ln PPL ratio" in out
    assert "turn 2" in out and "writing" in out and "smaller" in out


# --------------------------------------------------------------------------- refusals


def _copy(run: Run, tmp_path: Path) -> Run:
    shutil.copytree(run.root, tmp_path / "run")
    return Run(tmp_path / "run")


def test_other_tokenizer_is_refused(answered, k64, tmp_path):
    base_dir = Path(answered.load_manifest().models["baseline"].path)
    other = tmp_path / "other-tokenizer"
    other.mkdir()
    for f in base_dir.iterdir():
        if f.name != "tokenizer.json":
            (other / f.name).symlink_to(f)
    data = json.loads((base_dir / "tokenizer.json").read_text(encoding="utf-8"))
    new_id = max(t["id"] for t in data["added_tokens"]) + 1
    assert new_id < 49152  # a second string for an existing id: loadable, another vocabulary
    data["added_tokens"].append({"id": new_id, "content": "<judge_extra>", "single_word": False,
                                 "lstrip": False, "rstrip": False, "normalized": False,
                                 "special": True})
    (other / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    from judge.models.registry import resolve_model

    run = _copy(answered, tmp_path)
    run.update_manifest(models={"compressed-other": resolve_model(str(other))})
    with pytest.raises(TokenizerMismatchError, match="another vocabulary than the baseline"):
        diverge(run, ["compressed-other"], OPTS, progress=False)
    (other / "tokenizer.json").write_text('{"model": {"type": "BPE"', encoding="utf-8")
    with pytest.raises(ModelSpecError, match="cannot load a tokenizer"):
        diverge(run, ["compressed-other"], OPTS, progress=False)


def test_cache_of_another_tokenizer_is_refused(answered, k64, tmp_path):
    run = _copy(answered, tmp_path)
    header = run.divergence_dir / "baseline.k64s16.cache" / "header.json"
    data = json.loads(header.read_text())
    data["tokenizer_sha256"] = "0" * 64
    header.write_text(json.dumps(data))
    with pytest.raises(TokenizerMismatchError, match="cache was made with another tokenizer"):
        diverge(run, ["compressed-int4"], OPTS, progress=False)


def _rewrite_answers(path: Path, answers: list[Answer]) -> None:
    write_atomic(path, "".join(a.model_dump_json() + "\n" for a in answers))


def test_cache_of_other_sequences_is_refused(answered, k64, tmp_path):
    run = _copy(answered, tmp_path)
    path = run.answers_path("baseline")
    answers = read_jsonl(path, Answer)
    ids = [list(t) for t in answers[1].token_ids]
    ids[1][0] = (ids[1][0] + 1) % 1000  # turn 2's answer: in no prompt, only in the cache
    answers[1] = answers[1].model_copy(update={"token_ids": ids})
    _rewrite_answers(path, answers)
    with pytest.raises(RunFolderError, match="other tokens for question w2 turn 2"):
        diverge(run, ["compressed-int4"], OPTS, progress=False)


def test_missing_or_unusable_answers_are_refused(answered, k64, tmp_path):
    run = _copy(answered, tmp_path)
    path = run.answers_path("baseline")
    answers = read_jsonl(path, Answer)
    _rewrite_answers(path, [a.model_copy(update={"token_ids": None}) for a in answers])
    with pytest.raises(RunFolderError, match="has no token ids"):
        diverge(run, ["compressed-int4"], OPTS, progress=False)
    counts = [c + 1 for c in answers[0].prompt_token_counts]
    _rewrite_answers(path, [answers[0].model_copy(update={"prompt_token_counts": counts})])
    with pytest.raises(RunFolderError, match="chat template now gives"):
        diverge(run, ["compressed-int4"], OPTS, progress=False)
    path.unlink()
    with pytest.raises(RunFolderError, match="no baseline answers"):
        diverge(run, ["compressed-int4"], OPTS, progress=False)
    with pytest.raises(RunFolderError, match="not a model of this run"):
        diverge(run, ["compressed-nope"], OPTS, progress=False)


def test_token_arrays_of_unknown_role(answered, k64, tmp_path):
    with pytest.raises(RunFolderError, match="no divergence results for 'compressed-nope'"):
        load_divergence(answered, "compressed-nope")
    # the per-(question, turn) rows without their per-token arrays: refused too, naming the file
    run = Run(tmp_path / "r")
    rows = run.divergence_dir / "compressed-x.jsonl"
    rows.parent.mkdir(parents=True)
    shutil.copy(answered.divergence_dir / "compressed-int4.jsonl", rows)
    with pytest.raises(RunFolderError, match=r"compressed-x\.tokens\.npz: per-token divergence "
                                             r"file not found; run `judge diverge` first"):
        load_divergence(run, "compressed-x")


@pytest.fixture(scope="module")
def smoke_answers(tmp_path_factory, base_model) -> Run:
    """The smoke set (8 two-turn questions) answered with up to 64 tokens per turn: ~900 scored
    positions, enough for a mean KL whose tail-sampling noise is well below 1% (measured: 0.18%)."""
    from judge.generate.stage import generate
    from judge.models.registry import resolve_model
    from judge.questions import load_questions

    run = Run(tmp_path_factory.mktemp("diverge-smoke") / "run")
    info, questions = load_questions("smoke")
    generate(run, base_model, questions, info, role="baseline",
             gen=GenerationConfig(max_new_tokens=64),
             engine_options=EngineOptions(engine="hf", dtype="float32"), progress=False)
    run.update_manifest(models={"compressed": resolve_model("smollm2-135m-int4")})
    return run


def test_k64_estimate_is_within_one_percent_of_exact(smoke_answers):
    """The reported K = 64 KL (bound + 16 tail samples) against --top-k full on real answers."""
    (est,) = diverge(smoke_answers, ["compressed"], DivergeOptions(dtype="float32"), progress=False)
    cached = load_divergence(smoke_answers, "compressed")[1]
    (ex,) = diverge(smoke_answers, ["compressed"], DivergeOptions(dtype="float32", top_k=None),
                    progress=False)
    exact = load_divergence(smoke_answers, "compressed")[1].kl.astype(np.float64)
    assert cached.n_tokens == len(exact) > 800
    estimate, bound = cached.kl.astype(np.float64).mean(), cached.kl_bound.astype(np.float64).mean()
    print(f"\nK=64 over {len(exact)} tokens: exact {exact.mean():.5f}, estimate {estimate:.5f} "
          f"({estimate / exact.mean() - 1:+.3%}), bound {bound:.5f} ({bound / exact.mean() - 1:+.3%})")
    assert abs(estimate / exact.mean() - 1) < 0.01
    assert bound / exact.mean() < 0.99  # the bound alone misses by more than that here
    assert est.summary.overall.kl_mean == pytest.approx(estimate)
    assert ex.summary.kl_kind == "exact"
