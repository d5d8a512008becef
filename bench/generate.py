"""Benchmark: judge's batched generation against one-question-at-a-time transformers `generate`.

The baseline is how FastChat's gen_model_answer works: for each question, for each turn, one
unbatched `model.generate` call. judge's path is the generate stage itself (vLLM when installed,
all prompts of a turn in one batch). Both run in this process on the same model, questions, token
limit and device, greedy.

Fair by construction:
  * **one dtype**: ``--dtype`` is resolved once with `judge.generate.resolve_dtype` (``auto`` is
    float32 on a CPU without native bfloat16, else the checkpoint's dtype) and both sides load the
    model in it, on the same device (`judge.generate.load_hf_model` for the one-at-a-time side);
  * **warm-up outside the clock**: model loading and engine start are timed apart, then each side
    answers one question untimed (kernels, caches, lazy initialisation) before any timed round;
  * **best of N**: ``--rounds`` timed rounds, alternating which side goes first; the ratio is
    best against best (the least-disturbed round of each; every round is printed).

``--old`` also measures the way this script measured before (the one-at-a-time side loaded in the
checkpoint's own dtype on the CPU, each side timed once and cold) and prints that ratio beside the
fair one. Run it alone on the machine (``flock /tmp/judge-heavy.lock python bench/generate.py``).

    python bench/generate.py [--model smollm2-135m] [--questions judge-80] [--n 32]
                             [--max-new-tokens 128] [--rounds 3] [--engine auto] [--old]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any


def one_at_a_time(model: Any, device: Any, tok: Any, stops: list[int], questions: list,
                  max_new_tokens: int, limit_s: float | None = None) -> tuple[int, float, int]:
    """Each question, each turn, one unbatched HF generate (the FastChat way).

    Returns (tokens, seconds, questions done): with ``limit_s``, no question is started once that
    many seconds have passed (the caller then compares on the questions done)."""
    import torch

    from judge.generate.chat import conversation, decode, prompt_ids

    tokens = done = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for q in questions:
            if limit_s is not None and time.perf_counter() - t0 > limit_s:
                break
            answers: list[str] = []
            for _ in q.turns:
                ids = prompt_ids(tok, conversation(q.turns, answers))
                out = model.generate(torch.tensor([ids], device=device), max_new_tokens=max_new_tokens,
                                     do_sample=False, eos_token_id=stops, pad_token_id=stops[0])
                new = out[0, len(ids):].tolist()
                tokens += len(new)
                answers.append(decode(tok, new))
            done += 1
    return tokens, time.perf_counter() - t0, done


def fastchat_style(model_dir: str, questions: list, max_new_tokens: int, *, device: str = "cpu",
                   dtype: Any = "auto", limit_s: float | None = None) -> tuple[int, float, int]:
    """`one_at_a_time` on a model loaded here on ``device`` after an untimed 4-token warm-up
    (CUDA initialises its kernels on first use); used by bench/gpu_check.py."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judge.generate.chat import stop_token_ids

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    stops = stop_token_ids(tok, model_dir)
    one_at_a_time(model, device, tok, stops, questions[:1], 4)
    result = one_at_a_time(model, device, tok, stops, questions, max_new_tokens, limit_s)
    del model
    return result


def batched(engine: Any, tok: Any, model_info: Any, questions: list, max_new_tokens: int
            ) -> tuple[int, float]:
    """judge's generate stage on a ready engine, into a throwaway run. Returns (tokens, seconds)."""
    from judge.config import GenerationConfig
    from judge.generate import generate_with
    from judge.store import Run

    with tempfile.TemporaryDirectory() as d:
        res = generate_with(engine, tok, Run(Path(d) / "run"), model_info, questions,
                            role="baseline", gen=GenerationConfig(max_new_tokens=max_new_tokens),
                            chunk_size=len(questions))
    return res.tokens, res.seconds


def rate(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--questions", default="judge-80")
    ap.add_argument("--n", type=int, default=32, help="number of questions (from the start of the set)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--engine", default="auto", help="judge's engine: auto, vllm or hf")
    ap.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16 (both sides)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per side (best of N)")
    ap.add_argument("--old", action="store_true",
                    help="also measure the previous, unfair way (checkpoint dtype, cold, once)")
    args = ap.parse_args()
    if args.rounds < 1 or args.n < 1:
        ap.error("--rounds and --n must be at least 1")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judge.config import EngineOptions
    from judge.generate import cuda_available, load_hf_model, make_engine, resolve_dtype, stop_token_ids
    from judge.models.registry import resolve_model
    from judge.questions import load_questions

    info = resolve_model(args.model)
    _, qs = load_questions(args.questions)
    qs = qs[: args.n]
    dtype = resolve_dtype(args.dtype, on_cpu=not cuda_available())
    tok = AutoTokenizer.from_pretrained(info.path)
    stops = stop_token_ids(tok, info.path)
    opts = EngineOptions(engine=args.engine, dtype=dtype, max_model_len=4096,
                         chunk_size=len(qs), batch_size=len(qs))

    t0 = time.perf_counter()
    engine = make_engine(info.path, opts)
    engine_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, device = load_hf_model(info.path, EngineOptions(engine="hf", dtype=dtype))
    hf_load = time.perf_counter() - t0
    print(f"model {args.model}, {len(qs)} questions x 2 turns, max {args.max_new_tokens} new tokens, "
          f"greedy; dtype {args.dtype} -> {dtype} on both sides ({device}); judge engine "
          f"{engine.name} started in {engine_start:.1f} s, transformers loaded in {hf_load:.1f} s")

    old = None
    if args.old:  # before any warm-up: both sides cold, as the script used to time them
        j_old = batched(engine, tok, info, qs, args.max_new_tokens)
        cold = AutoModelForCausalLM.from_pretrained(info.path, dtype="auto").eval()  # on the CPU
        cold_dtype = str(next(cold.parameters()).dtype).removeprefix("torch.")
        f_old = one_at_a_time(cold, "cpu", tok, stops, qs, args.max_new_tokens)[:2]
        del cold
        old = (j_old, f_old, cold_dtype)

    warm = qs[:1]  # untimed: one question through each side
    batched(engine, tok, info, warm, min(16, args.max_new_tokens))
    one_at_a_time(model, device, tok, stops, warm, min(16, args.max_new_tokens))

    judge_runs: list[tuple[int, float]] = []
    hf_runs: list[tuple[int, float]] = []
    for r in range(args.rounds):
        sides = [("judge", judge_runs), ("one", hf_runs)]
        for name, runs in sides if r % 2 == 0 else sides[::-1]:
            if name == "judge":
                runs.append(batched(engine, tok, info, qs, args.max_new_tokens))
            else:
                runs.append(one_at_a_time(model, device, tok, stops, qs, args.max_new_tokens)[:2])
        (jt, js), (ft, fs) = judge_runs[-1], hf_runs[-1]
        print(f"round {r + 1}: judge {jt} tokens in {js:.1f} s = {rate(jt, js):.1f} tok/s; "
              f"one-at-a-time {ft} tokens in {fs:.1f} s = {rate(ft, fs):.1f} tok/s")
    engine.close()

    j_best = max(rate(*x) for x in judge_runs)
    f_best = max(rate(*x) for x in hf_runs)
    print(f"one-at-a-time transformers generate ({dtype}) : best {f_best:7.1f} tok/s of {args.rounds}")
    print(f"judge generate ({engine.name}, batched, {dtype})     : best {j_best:7.1f} tok/s of {args.rounds}")
    print(f"fair ratio judge / one-at-a-time: {j_best / f_best:.2f}x  (target >= 5x)")
    if old is not None:
        (jt, js), (ft, fs), cold_dtype = old
        print(f"old way (one-at-a-time in {cold_dtype} on the CPU, both cold, once): judge "
              f"{rate(jt, js):.1f} tok/s / one-at-a-time {rate(ft, fs):.1f} tok/s = "
              f"{rate(jt, js) / rate(ft, fs):.2f}x")


if __name__ == "__main__":
    main()
