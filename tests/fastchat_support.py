"""FastChat's own numbers for the parity tests: fschat's ``show_result`` run on a judgment file.

``show_result`` prints pandas tables; shadowing ``print`` in its module (a module global, looked up
before the builtin) captures them, so the numbers compared are exactly the ones FastChat shows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from judge.schemas import SingleJudgment
from judge.store import Run, read_jsonl


def show_single(path: Path, monkeypatch) -> dict[str, float]:
    """Per-model average from fschat's own display_result_single (its printed DataFrames captured)."""
    from fastchat.llm_judge import show_result

    printed: list[object] = []
    monkeypatch.setattr(show_result, "print", lambda *a, **k: printed.extend(a), raising=False)
    show_result.display_result_single(argparse.Namespace(
        bench_name="mt_bench", input_file=str(path), judge_model="gpt-4", model_list=None))
    average = printed[-1]  # the "Average" table: index model, column score
    return {m: float(v) for m, v in average["score"].items()}


def show_pairwise(path: Path, monkeypatch) -> dict[str, tuple[int, int, int]]:
    """Per-model (win, loss, tie) from fschat's own display_result_pairwise."""
    from fastchat.llm_judge import show_result

    printed: list[object] = []
    monkeypatch.setattr(show_result, "print", lambda *a, **k: printed.extend(a), raising=False)
    show_result.display_result_pairwise(argparse.Namespace(
        bench_name="mt_bench", input_file=str(path), judge_model="gpt-4", model_list=None,
        baseline_model=None))
    df = printed[-1]
    return {m: (int(r["win"]), int(r["loss"]), int(r["tie"])) for m, r in df.iterrows()}


def judge_means(run: Run) -> dict[str, float]:
    """judge's per-model mean over its ``ok`` single judgments (one per key)."""
    rows = [r for r in read_jsonl(run.single_path, SingleJudgment) if r.status == "ok"]
    return {m: sum(r.score for r in rows if r.model == m) / sum(1 for r in rows if r.model == m)
            for m in {r.model for r in rows}}
