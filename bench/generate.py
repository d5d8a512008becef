"""Benchmark: judge's batched generation against one-question-at-a-time transformers `generate`.

The baseline is how FastChat's gen_model_answer works: for each question, for each turn, one
unbatched `model.generate` call. judge's path is the generate stage itself (vLLM when installed,
all prompts of a turn in one batch). Both run in this process on the same model, questions and
token limit, greedy; the script prints generated tokens per second of each and the ratio.
Model loading is timed separately and excluded from the throughput figures.

    python bench/generate.py [--model smollm2-135m] [--questions judge-80] [--n 32] [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def fastchat_style(model_dir: str, questions, max_new_tokens: int) -> tuple[int, float]:
    """One question at a time, one turn at a time, unbatched HF generate. Returns (tokens, seconds)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judge.generate.chat import conversation, decode, prompt_ids, stop_token_ids

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto").eval()
    stops = stop_token_ids(tok, model_dir)
    tokens = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for q in questions:
            answers: list[str] = []
            for _ in q.turns:
                ids = prompt_ids(tok, conversation(q.turns, answers))
                out = model.generate(torch.tensor([ids]), max_new_tokens=max_new_tokens,
                                     do_sample=False, eos_token_id=stops, pad_token_id=stops[0])
                new = out[0, len(ids):].tolist()
                tokens += len(new)
                answers.append(decode(tok, new))
    return tokens, time.perf_counter() - t0


def judge_batched(model_info, questions, info, max_new_tokens: int, engine: str) -> tuple[int, float, float, str]:
    """judge's generate stage. Returns (tokens, generation seconds, load seconds, engine name)."""
    from transformers import AutoTokenizer

    from judge.config import EngineOptions, GenerationConfig
    from judge.generate.engines import make_engine
    from judge.generate.stage import generate_with
    from judge.store import Run

    opts = EngineOptions(engine=engine, max_model_len=4096, chunk_size=len(questions),
                         batch_size=len(questions))
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_info.path)
    eng = make_engine(model_info.path, opts)
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        res = generate_with(eng, tok, Run(Path(d) / "run"), model_info, questions, role="baseline",
                            gen=GenerationConfig(max_new_tokens=max_new_tokens), chunk_size=len(questions))
    eng.close()
    return res.tokens, res.seconds, load_s, eng.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--questions", default="judge-80")
    ap.add_argument("--n", type=int, default=32, help="number of questions (from the start of the set)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--engine", default="auto", help="judge's engine: auto, vllm or hf")
    args = ap.parse_args()

    from judge.models.registry import resolve_model
    from judge.questions import load_questions

    model = resolve_model(args.model)
    info, qs = load_questions(args.questions)
    qs = qs[: args.n]
    j_tok, j_s, j_load, eng = judge_batched(model, qs, info, args.max_new_tokens, args.engine)
    f_tok, f_s = fastchat_style(model.path, qs, args.max_new_tokens)
    j_rate, f_rate = j_tok / j_s, f_tok / f_s
    print(f"model {args.model}, {len(qs)} questions x 2 turns, max {args.max_new_tokens} new tokens, greedy")
    print(f"one-at-a-time transformers generate : {f_tok:6d} tokens in {f_s:7.1f} s = {f_rate:7.1f} tok/s")
    print(f"judge generate ({eng}, batched)      : {j_tok:6d} tokens in {j_s:7.1f} s = {j_rate:7.1f} tok/s"
          f"  (+{j_load:.1f} s engine start)")
    print(f"ratio judge / one-at-a-time: {j_rate / f_rate:.2f}x  (target >= 5x)")


if __name__ == "__main__":
    main()
