"""The two axes end to end on the embedded model, with no judge: `judge compare --judge none`.

The baseline compared with itself must read ``unchanged`` (identical greedy answers, KL 0), with no
judge endpoint and no key anywhere, and `judge compare --gate` must exit with the gate's code;
`judge gate` then re-checks the same run with other margins. Real generation and divergence
(transformers on CPU), two short questions, 16 new tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    {"question_id": 1, "category": "math", "turns": ["What is 12 times 3?", "Add 4 to that."],
     "reference": ["36", "40"]},
    {"question_id": 2, "category": "writing", "turns": ["Write one sentence about rain.",
                                                          "Now make it rhyme."]},
]


def judge(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "JUDGE_API_KEY")}
    return subprocess.run([sys.executable, "-m", "judge", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, env=env)


def test_baseline_against_itself_without_a_judge_is_unchanged(base_model, tmp_path: Path) -> None:
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps(x) + "\n" for x in QUESTIONS), encoding="utf-8")
    run = tmp_path / "self"
    proc = judge("compare", "smollm2-135m", "smollm2-135m", "-q", str(q), "--run", str(run),
                 "--judge", "none", "--max-new-tokens", "16", "--engine", "hf", "--no-progress",
                 "--gate", "max-kl=0.01", "--gate", "max-grade-drop=0.5")
    # max-kl passes, max-grade-drop has no judge to measure it: inconclusive, exit code 3
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "judge: none" in proc.stdout
    assert not (run / "judgments").exists() and not (run / "judge_cache.sqlite").exists()
    card = json.loads((run / "scorecard.json").read_text())
    b = card["sections"][0]["behaviour"]
    assert (b["status"], b["rule"], b["n_answers"], b["n_identical"]) == ("unchanged", "exact identity", 4, 4)
    assert b["compared_by"] == "token ids" and b["greedy"] is True
    assert b["kl_mean"]["estimate"] == pytest.approx(0.0, abs=1e-6)
    assert b["same_top1"]["estimate"] == pytest.approx(1.0)
    q_axis = card["sections"][0]["quality"]
    assert (q_axis["status"], q_axis["self_test"]) == ("unknown", "no judge")
    assert card["verdict"].startswith("compressed: Behaviour unchanged: all 4 answers are identical "
                                      "to the baseline's, KL ")
    assert "same top-1 100%." in card["verdict"]
    assert "Quality: unknown: no judge was run." in card["verdict"]
    assert "behaviour unchanged · quality unknown" in proc.stdout  # the section's title line
    assert (run / "flagged.jsonl").read_text() == ""  # nothing regressed, nothing diverged
    gate = json.loads((run / "gate.json").read_text())
    assert {r["criterion"]: r["outcome"] for r in gate["results"]} == {
        "max_kl": "pass", "max_grade_drop": "inconclusive"}
    # `judge gate` on the same run: the KL criterion alone passes (exit 0), a negative margin fails
    ok = judge("gate", str(run), "--max-kl", "0.01", "--junit", str(tmp_path / "ci.xml"))
    assert ok.returncode == 0, ok.stderr
    assert ET.parse(tmp_path / "ci.xml").getroot().get("failures") == "0"
    assert judge("gate", str(run), "--max-kl", "-1").returncode == 2  # bad input, not a failure
