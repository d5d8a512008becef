"""Imported FastChat runs keep their quality verdicts: there is no judge to self-test, so quality is
shown with that caveat (never silently ``unknown``), and behaviour is compared as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from judge.interop import import_fastchat
from judge.scorecard import build_scorecard
from judge.store import Run

MEDUSA = "medusa-vicuna-7b-v1.3-1-temperature-0.0-posterior_threshold-0.09-posterior_alpha-0.3"


def test_vicuna_against_medusa_is_not_distinguishable(mtbench_dir: Path, tmp_path: Path) -> None:
    run = Run(tmp_path / "medusa")
    import_fastchat(mtbench_dir, "vicuna-7b-v1.3", MEDUSA, run)
    card = build_scorecard(run, n_resamples=1000)
    q = card.sections[0].quality
    assert (q.status, q.signals_status, q.self_test) == ("not distinguishable", "not distinguishable",
                                                         "imported")
    assert card.self_test is None
    assert "Quality: not distinguishable; the judge was not self-tested (imported judgments)." in card.verdict
    b = card.sections[0].behaviour
    # 160 answers as text; decoding not recorded, no control: a difference cannot be told from noise
    assert (b.compared_by, b.n_answers, b.status) == ("text", 160, "unknown")


def test_llama3_against_griffin_is_worse(mtbench_dir: Path, tmp_path: Path) -> None:
    folder = mtbench_dir / "extra" / "llama3-8b-griffin"
    run = Run(tmp_path / "griffin")
    import_fastchat(folder, "Meta-Llama-3-8B-Instruct-Normal", "Meta-Llama-3-8B-Instruct-Griffin", run,
                    judge_files=[folder / "model_judgment" / "gpt-4_single-origin.jsonl"],
                    questions=mtbench_dir / "question.jsonl")
    card = build_scorecard(run, n_resamples=1000)
    q = card.sections[0].quality
    assert (q.status, q.self_test) == ("worse", "imported")
    assert [(s.name, s.direction) for s in q.signals] == [("grade delta", "worse")]
    assert "Quality: worse (grade delta \u22125.07)" in card.verdict
    assert q.recovery.estimate == pytest.approx(2.7 / 7.76875)  # llm-compressor's recovery: 35%
