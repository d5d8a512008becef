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
3. **Accuracy.** The reported K = 64 KL (the lower bound + the tail estimate from 16 samples per
   position) and the bound alone, against the exact KL (``--top-k full``): relative error of the
   mean (target: within 1%), and the largest per-token gap of the bound. ``--tail-sweep`` adds
   the estimate's error for other sample counts (each a fresh cache).

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
    from judge.generate.stage import generate
    from judge.models.registry import resolve_model
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
    from judge.diverge.stage import baseline_sequences, tokenizer_identity
    from judge.diverge.passes import _by_question_chunks, answer_logits
    from judge.generate.engines.hf import load_hf_model

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
    ap.add_argument("--tail-sweep", default="", help="comma-separated tail sample counts, e.g. 4,64")
    args = ap.parse_args()

    import torch

    from judge.diverge.stage import DivergeOptions, diverge, load_divergence

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
    print(f"\ncache K=64 + {c.tail_samples} tail samples: {c.bytes:,} bytes for {c.n_tokens} tokens = {c.bytes_per_token:.0f} B/token "
          f"({c.payload_bytes_per_token} B of rows); llama.cpp: 2 x {c.vocab_size} = "
          f"{c.llama_cpp_bytes_per_token:,} B/token")
    print(f"size ratio: {c.times_smaller_than_llama_cpp:.0f}x smaller (whole folder), "
          f"{c.llama_cpp_bytes_per_token / c.payload_bytes_per_token:.0f}x (rows alone) "
          "(target >= 100x)")

    # 3. accuracy -------------------------------------------------------------------------------
    cached = load_divergence(run, role)[1]
    estimate, bound = cached.kl.astype("float64"), cached.kl_bound.astype("float64")
    (exact_res,) = diverge(run, [role], opts.model_copy(update={"top_k": None}), progress=False)
    exact = load_divergence(run, role)[1].kl.astype("float64")
    print(f"\nmean KL(baseline ‖ int4), exact {exact.mean():.6f} nats "
          f"(mean baseline mass outside the top 64: {100 * c.mean_tail_mass:.2f}%)")
    print(f"  K=64 reported (bound + tail estimate, S={c.tail_samples}): {estimate.mean():.6f}, "
          f"relative error {estimate.mean() / exact.mean() - 1:+.3%} (target within 1%)")
    print(f"  K=64 lower bound alone:                       {bound.mean():.6f}, relative error "
          f"{bound.mean() / exact.mean() - 1:+.3%}; largest per-token gap "
          f"{(exact - bound).max():.2e} nats; bound <= exact + 1e-5 everywhere: "
          f"{bool((bound <= exact + 1e-5).all())}")
    print(f"exact cache: {exact_res.summary.cache.bytes_per_token:,.0f} B/token")
    shutil.rmtree(Path(exact_res.summary.cache.path))  # 4 bytes x vocabulary per token: drop it
    for n in [int(x) for x in args.tail_sweep.split(",") if x.strip()]:
        (r,) = diverge(run, [role], opts.model_copy(update={"tail_samples": n}), progress=False)
        est = load_divergence(run, role)[1].kl.astype("float64")
        print(f"  S={n:<3d} tail samples: {est.mean():.6f}, relative error "
              f"{est.mean() / exact.mean() - 1:+.3%}, cache {r.summary.cache.bytes_per_token:.0f} "
              "B/token")
        shutil.rmtree(Path(r.summary.cache.path))
    diverge(run, [role], opts, progress=False)  # leave the default K=64 outputs in place

    if args.variants:
        print()
        for r in diverge(run, None, opts, progress=False):
            o = r.summary.overall
            print(f"{r.role:18s} mean KL {o.kl_mean:.4f} ± {o.kl_se:.4f} nats, same top-1 "
                  f"{o.same_top1:.1%}, ln PPL ratio {o.log_ppl_ratio:+.4f}")


if __name__ == "__main__":
    main()
