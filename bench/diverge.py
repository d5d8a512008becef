"""Benchmark: the divergence stage against two plain forward passes, and the cache against llama.cpp.

In one run, on the baseline's real answers to a question set (generated once into the run folder
and reused by later runs):

1. **Overhead.** Two plain forward passes (baseline, then compressed) over exactly the sequences
   the stage scores, in the same batches, each including its model load, against the whole
   `judge diverge` stage at K = 64 from an empty divergence folder (model loads, top-K cache,
   shard files, the compressed pass, statistics and output files). Target: <= 1.3x.
2. **Cache size.** The K = 64 cache folder's bytes per scored token (sequences and headers
   included) against llama.cpp's ``--kl-divergence-base`` file, 2 bytes x vocabulary per token.
   Target: >= 100x smaller.
3. **Accuracy.** The K = 64 lower bound against the exact KL (``--top-k full``): relative error of
   the mean, and the largest per-token gap.

Wall-clock and process CPU seconds are both printed, each the best of ``--rounds`` interleaved
rounds: on a shared machine the CPU ratio is the steadier one. ``--variants`` adds the mean KL of every embedded variant.

    python bench/diverge.py [--questions smoke] [--n 8] [--max-new-tokens 96] [--dtype float32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self) -> "Clock":
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w0, time.process_time() - self.c0


def prepare_run(root: Path, questions: str, n: int, max_new_tokens: int, compressed: list[str]):
    from judge.config import EngineOptions, GenerationConfig
    from judge.generation import generate
    from judge.models import resolve_model
    from judge.questions import load_questions
    from judge.store import Run

    run = Run(root)
    info, qs = load_questions(questions)
    base = resolve_model("smollm2-135m")
    res = generate(run, base, qs[:n], info, role="baseline",
                   gen=GenerationConfig(max_new_tokens=max_new_tokens),
                   engine_options=EngineOptions(engine="hf", dtype="float32"), progress=False)
    if res.generated:
        print(f"generated baseline answers: {res.generated} questions, {res.tokens} tokens")
    run.update_manifest(models={f"compressed-{name.rsplit('-', 1)[1]}": resolve_model(name)
                                for name in compressed})
    return run


def plain_forwards(run, roles: list[str], options) -> tuple[Clock, int]:
    """Load each model and run it over the stage's sequences, same batches; nothing else."""
    from judge.divergence import baseline_sequences, tokenizer_identity
    from judge.divergence_passes import _by_question_chunks, answer_logits
    from judge.engines.hf import load_hf_model

    models = run.load_manifest().models
    _, _, tok = tokenizer_identity(models["baseline"].path)
    seqs, _ = baseline_sequences(run, tok)
    chunks = _by_question_chunks(seqs, options.chunk_questions)  # the stage's shards
    with Clock() as clock:
        for role in roles:
            model, device = load_hf_model(models[role].path, options.engine_options())
            for chunk in chunks:
                for _, logits in answer_logits(model, device, chunk, options.batch_tokens):
                    float(logits[-1:, :1].sum()) if len(logits) else None  # force the result
            del model
    return clock, sum(s.n_answer for s in seqs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", default="smoke")
    ap.add_argument("--n", type=int, default=8, help="questions")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--run", default="outputs/bench-diverge", help="run folder (reused)")
    ap.add_argument("--variants", action="store_true", help="also int8 and drop4")
    ap.add_argument("--rounds", type=int, default=2, help="timing rounds (the best is kept)")
    args = ap.parse_args()

    import torch

    from judge.divergence import DivergeOptions, diverge, load_divergence

    torch.manual_seed(0)
    names = ["smollm2-135m-int4"] + (["smollm2-135m-int8", "smollm2-135m-drop4"]
                                     if args.variants else [])
    run = prepare_run(Path(args.run), args.questions, args.n, args.max_new_tokens, names)
    opts = DivergeOptions(dtype=args.dtype)
    role = "compressed-int4"
    torch.ones(64, 64) @ torch.ones(64, 64)  # wake the thread pool before anything is timed

    # 1. overhead: min over rounds of each, interleaved, so drift on a shared machine cancels ----
    plains, stages = [], []
    for _ in range(args.rounds):
        plain, n_tokens = plain_forwards(run, ["baseline", role], opts)
        shutil.rmtree(run.divergence_dir, ignore_errors=True)
        with Clock() as stage:
            (res,) = diverge(run, [role], opts, progress=False)
        plains.append(plain)
        stages.append(stage)
    p_wall, p_cpu = min(c.wall for c in plains), min(c.cpu for c in plains)
    s_wall, s_cpu = min(c.wall for c in stages), min(c.cpu for c in stages)
    print(f"\n{n_tokens} scored tokens, {len(res.summary.per_question)} questions, dtype {args.dtype}, "
          f"best of {args.rounds} rounds")
    print(f"two plain forward passes (incl. loads): {p_wall:7.2f} s wall {p_cpu:7.2f} s CPU   "
          f"(rounds: {', '.join(f'{c.wall:.1f}' for c in plains)} s wall)")
    print(f"judge diverge, K=64, from scratch:      {s_wall:7.2f} s wall {s_cpu:7.2f} s CPU   "
          f"(rounds: {', '.join(f'{c.wall:.1f}' for c in stages)} s wall)")
    print(f"overhead ratio: {s_wall / p_wall:.3f}x wall, {s_cpu / p_cpu:.3f}x CPU (target <= 1.3x)")

    # 2. cache size -----------------------------------------------------------------------------
    c = res.summary.cache
    print(f"\ncache K=64: {c.bytes:,} bytes for {c.n_tokens} tokens = {c.bytes_per_token:.0f} B/token "
          f"({c.payload_bytes_per_token} B of rows); llama.cpp: 2 x {c.vocab_size} = "
          f"{c.llama_cpp_bytes_per_token:,} B/token")
    print(f"size ratio: {c.times_smaller_than_llama_cpp:.0f}x smaller (whole folder), "
          f"{c.llama_cpp_bytes_per_token / c.payload_bytes_per_token:.0f}x (rows alone) "
          "(target >= 100x)")

    # 3. accuracy -------------------------------------------------------------------------------
    bound = load_divergence(run, role)[1].kl.astype("float64")
    (exact_res,) = diverge(run, [role], opts.model_copy(update={"top_k": None}), progress=False)
    exact = load_divergence(run, role)[1].kl.astype("float64")
    rel = bound.mean() / exact.mean() - 1
    print(f"\nmean KL(baseline ‖ int4): K=64 {bound.mean():.6f}, exact {exact.mean():.6f} nats; "
          f"relative error {rel:+.3%}; largest per-token gap {(exact - bound).max():.2e} nats; "
          f"bound <= exact + 1e-5 everywhere: {bool((bound <= exact + 1e-5).all())}")
    print(f"exact cache: {exact_res.summary.cache.bytes_per_token:,.0f} B/token")
    shutil.rmtree(Path(exact_res.summary.cache.path))  # 4 bytes x vocabulary per token: drop it
    diverge(run, [role], opts, progress=False)  # leave the K=64 outputs in place

    if args.variants:
        print()
        for r in diverge(run, None, opts, progress=False):
            o = r.summary.overall
            print(f"{r.role:18s} mean KL {o.kl_mean:.4f} ± {o.kl_se:.4f} nats, same top-1 "
                  f"{o.same_top1:.1%}, ln PPL ratio {o.log_ppl_ratio:+.4f}")


if __name__ == "__main__":
    main()
