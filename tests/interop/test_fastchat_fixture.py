"""FastChat parity on a small tree written here (tests/data/fastchat, see its README for the
numbers by hand), so that it runs in every clone: judge's import against fschat's own
``show_result`` and ``llm_judge.common`` loaders, the export read back by FastChat, and the import
reported in one command. tests/interop/test_fastchat.py repeats these on the real MT-Bench files
where ../shared has them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fastchat_support import judge_means, show_pairwise, show_single
from judge.cli import main
from judge.interop.fastchat_export import export_fastchat
from judge.interop.fastchat_import import fastchat_mean, import_fastchat
from judge.schemas import PairJudgment, SingleJudgment
from judge.store import Run, read_jsonl

TREE = Path(__file__).resolve().parent.parent / "data" / "fastchat"
BASE, COMP = "lamp-7b", "lamp-7b-q4"


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """A copy of the tree (nothing may write into tests/data)."""
    return shutil.copytree(TREE, tmp_path / "mt_bench")


def test_means_equal_fastchat_show_result(tree: Path, tmp_path: Path, monkeypatch) -> None:
    judgments = tree / "model_judgment" / "gpt-4_single.jsonl"
    run = Run(tmp_path / "run")
    s = import_fastchat(tree, BASE, COMP, run)
    fastchat = show_single(judgments, monkeypatch)
    ours = judge_means(run)
    # without duplicates the two rules agree exactly: 47 / 8
    assert ours[COMP] == pytest.approx(fastchat[COMP], abs=1e-12) == 5.875
    # with one: FastChat averages the superseded 6 in (56 / 8), judge keeps the last grade (50 / 7)
    assert fastchat[BASE] == pytest.approx(7.0, abs=1e-12)
    assert ours[BASE] == pytest.approx(50 / 7, abs=1e-12)
    dups = [r for r in read_jsonl(run.single_path, SingleJudgment) if r.status == "duplicate"]
    assert len(dups) == 1 and "score 6" in (dups[0].error or "")
    assert (ours[BASE] * 7 + 6) / 8 == pytest.approx(fastchat[BASE], abs=1e-12)
    base = s.roles[0]
    assert (base.single_rows, base.single_ok, base.single_imported_error, base.single_duplicate) == (9, 7, 1, 1)
    assert base.fastchat_mean == pytest.approx(fastchat[BASE], abs=1e-12)
    rows = [json.loads(x) for x in judgments.read_text().splitlines()]
    assert fastchat_mean(rows, COMP) == pytest.approx(fastchat[COMP], abs=1e-12)
    assert s.ignored_rows == 2 and fastchat["lamp-7b-sampled"] == 9.5  # the third model's rows


def test_pairwise_counts_equal_fastchat_show_result(tree: Path, tmp_path: Path, monkeypatch) -> None:
    run = Run(tmp_path / "run")
    s = import_fastchat(tree, BASE, COMP, run)
    assert (s.pair_rows, s.pair_ok, s.pair_imported_error, s.pair_swapped) == (8, 7, 1, 8)
    rows = [r for r in read_jsonl(run.pairwise_path, PairJudgment) if r.status == "ok"]
    ours = (sum(r.winner == "compressed" for r in rows), sum(r.winner == "baseline" for r in rows),
            sum(r.winner == "tie" for r in rows))
    fastchat = show_pairwise(tree / "model_judgment" / "gpt-4_pair.jsonl", monkeypatch)
    assert ours == fastchat[COMP] == (1, 3, 3)
    assert fastchat[BASE] == (3, 1, 3)


def test_export_reads_back_in_fastchat(tree: Path, tmp_path: Path, monkeypatch) -> None:
    from fastchat.llm_judge.common import load_model_answers, load_single_model_judgments

    run = Run(tmp_path / "run")
    import_fastchat(tree, BASE, COMP, run)
    out = tmp_path / "fc"
    s = export_fastchat(run, out)
    # one row per key: 8 keys x 2 models, lamp-7b's (4, 2) exported as a failure (score -1)
    assert (s.single_rows, s.single_failed, s.pair_rows, s.pair_failed, s.questions) == (16, 1, 8, 1, 4)
    answers = load_model_answers(str(out / "model_answer"))
    assert {m: len(a) for m, a in answers.items()} == {BASE: 4, COMP: 4}
    loaded = load_single_model_judgments(str(out / "model_judgment" / "gpt-4_single.jsonl"))
    assert sum(len(v) for v in loaded.values()) == 16
    exported = show_single(out / "model_judgment" / "gpt-4_single.jsonl", monkeypatch)
    assert exported[BASE] == pytest.approx(50 / 7, abs=1e-12)  # de-duplicated now
    assert exported[COMP] == pytest.approx(5.875, abs=1e-12)
    source = show_pairwise(tree / "model_judgment" / "gpt-4_pair.jsonl", monkeypatch)
    assert show_pairwise(out / "model_judgment" / "gpt-4_pair.jsonl", monkeypatch) == source


def test_import_and_report_in_one_command(tree: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    main(["import-fastchat", str(tree), "--baseline", BASE, "--compressed", COMP,
          "--run", str(run_dir)])
    out = capsys.readouterr().out
    assert "mean 7.1429 (FastChat show_result: 7.0000)" in out and "scorecard.json" in out
    card = json.loads((run_dir / "scorecard.json").read_text())
    sec = card["sections"][0]
    overall = sec["grades"][0]
    # paired items: the 7 keys lamp-7b has a grade for; lamp-7b-q4 there: 6 7 9 3 6 4 7 = 42
    assert (overall["n"], overall["baseline_mean"], overall["compressed_mean"]) == (
        7, pytest.approx(50 / 7), pytest.approx(6.0))
    assert overall["delta"]["estimate"] == pytest.approx(-8 / 7)
    h = sec["head_to_head"]
    assert (h["n"], h["compressed_wins"], h["ties"], h["baseline_wins"], h["inconsistent"]) == (7, 1, 3, 3, 1)
    assert h["win_rate"]["estimate"] == pytest.approx(2.5 / 7)
    assert card["n_superseded"] == 1 and card["provenance"]["judge_model"] == "gpt-4"
    assert {(f["kind"], f["role"], f["status"]): f["count"] for f in card["failures"]} == {
        ("single", "baseline", "imported_error"): 1, ("pairwise", "compressed", "imported_error"): 1}
    assert (run_dir / "report.html").is_file()
