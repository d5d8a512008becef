"""`judge gate`: each criterion's pass / fail / inconclusive rule, the exit codes, JUnit and Markdown.

The synthetic run (tests/synthetic_run.py) has known intervals; each margin below is placed inside,
beyond or across the interval the scorecard reports, so every rule is exercised both ways.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from judge.cli import main
from judge.cli.gate import parse_gate_specs
from judge.errors import ConfigError
from judge.scorecard import build_scorecard, evaluate_gate
from judge.scorecard.gate import junit_xml, markdown_summary
from judge.store import Run, append_jsonl
from synthetic_run import write_synthetic_run


@pytest.fixture()
def run(tmp_path: Path) -> Run:
    return write_synthetic_run(tmp_path / "run", control=False)


@pytest.fixture()
def card(run: Run):
    # the synthetic run has 4 questions: below the scorecard's minimum for an interval, so the
    # rules are exercised on the plain percentile interval computed down to 2 questions
    return build_scorecard(run, n_resamples=2000, method="percentile", min_questions=2)


def test_rows_without_an_interval_are_inconclusive(run: Run) -> None:
    card = build_scorecard(run, n_resamples=2000)  # the default: no interval under 8 questions
    for name, margin in (("max_grade_drop", 5.0), ("max_grade_drop", 0.0), ("min_win_rate", 0.0)):
        assert _outcome(card, name, margin) == "inconclusive"


def _outcome(card, name: str, margin: float) -> str:
    report = evaluate_gate(card, {name: margin})
    assert len(report.results) == 1
    return report.results[0].outcome


def test_max_grade_drop(card) -> None:
    d = card.sections[0].grades[0].delta  # -1.29 [-1.75, -0.60]: the drop is [0.60, 1.75]
    assert _outcome(card, "max_grade_drop", -d.low) == "pass"  # upper bound of the drop <= margin
    assert _outcome(card, "max_grade_drop", -d.high - 0.01) == "fail"  # the whole drop is above
    assert _outcome(card, "max_grade_drop", 1.0) == "inconclusive"
    r = evaluate_gate(card, {"max_grade_drop": 1.0}).results[0]
    assert (r.estimate, r.low, r.high) == (pytest.approx(-d.estimate), pytest.approx(-d.high),
                                           pytest.approx(-d.low))


def test_min_recovery_and_win_rate(card) -> None:
    rec = card.sections[0].quality.recovery
    assert rec.estimate == pytest.approx(41 / 50)  # paired means 41/7 over 50/7
    assert _outcome(card, "min_recovery", rec.low) == "pass"
    assert _outcome(card, "min_recovery", rec.high + 0.01) == "fail"
    assert _outcome(card, "min_recovery", rec.estimate) == "inconclusive"
    w = card.sections[0].head_to_head.win_rate  # 0.42 [0.25, 0.75]
    assert _outcome(card, "min_win_rate", 0.25) == "pass"
    assert _outcome(card, "min_win_rate", 0.76) == "fail"
    assert _outcome(card, "min_win_rate", 0.45) == "inconclusive" and w.low < 0.45 < w.high


def test_max_kl_and_flip_rate(card) -> None:
    kl = card.sections[0].behaviour.kl_mean
    assert kl.estimate == pytest.approx(22.6 / 120)
    assert _outcome(card, "max_kl", kl.high) == "pass"
    assert _outcome(card, "max_kl", kl.low - 0.001) == "fail"
    assert _outcome(card, "max_kl", kl.estimate) == "inconclusive"
    fr = card.sections[0].quality.flip_rate  # the judge's flips: 2 of 5 items
    assert fr.estimate == pytest.approx(0.4)
    assert _outcome(card, "max_flip_rate", fr.high) == "pass"
    assert _outcome(card, "max_flip_rate", 0.3) == "inconclusive"


def test_judge_criteria_need_a_judge_that_sees(run: Run) -> None:
    from test_judge_selftest import _row

    # a flat judge's self-test rows: it failed, so the judge's criteria cannot pass or fail
    append_jsonl(run.probes_path, [_row(i, "truncated", detected=False, lower=False, judge="judge-model")
                                   for i in range(12)])
    card = build_scorecard(run, n_resamples=500, method="percentile", min_questions=2)
    assert card.sections[0].quality.status == "unknown" and card.self_test.status == "failed"
    report = evaluate_gate(card, {"max_grade_drop": 5.0, "min_win_rate": 0.0, "max_kl": 1.0,
                                  "min_judge_sensitivity": 0.8})
    got = {r.criterion: r.outcome for r in report.results}
    assert got == {"max_grade_drop": "inconclusive", "min_win_rate": "inconclusive",
                   "max_kl": "pass", "min_judge_sensitivity": "fail"}
    assert "the judge failed its self-test" in report.results[0].message
    assert report.outcome == "fail" and report.exit_code == 1


def test_sensitivity_without_a_self_test_is_inconclusive(card) -> None:
    r = evaluate_gate(card, {"min_judge_sensitivity": 0.8}).results[0]
    assert r.outcome == "inconclusive" and "no self-test" in r.message


def _main(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return int(info.value.code)


def test_exit_codes_and_files(tmp_path: Path, capsys) -> None:
    # 12 questions (the synthetic run three times): `judge gate` uses the scorecard's default intervals
    run = write_synthetic_run(tmp_path / "run", control=False, copies=3)
    root = str(run.root)
    assert _main("gate", root, "--max-grade-drop", "2", "--max-kl", "0.5") == 0
    assert _main("gate", root, "--max-grade-drop", "0.3", "--max-kl", "0.5") == 1
    assert _main("gate", root, "--max-grade-drop", "1.0", "--max-kl", "0.5") == 3
    assert _main("gate", root, "--max-grade-drop", "0.3", "--max-kl", "0.2") == 1  # fail beats inconclusive
    # bad input: exit 2, one line
    capsys.readouterr()
    assert _main("gate", root) == 2
    assert "give at least one criterion" in capsys.readouterr().err
    assert _main("gate", root, "--min-win-rate", "1.5") == 2
    assert _main("gate", root, "--max-kl", "0.1", "--role", "compressed-x") == 2
    assert _main("gate", str(run.root.parent / "absent"), "--max-kl", "0.1") == 2
    # the files of the last good call (max-grade-drop 0.3 fails, max-kl 0.2 inconclusive)
    _main("gate", root, "--max-grade-drop", "0.3", "--max-kl", "0.2", "--min-win-rate", "0.25")
    gate = json.loads((run.root / "gate.json").read_text())
    assert gate["outcome"] == "fail" and gate["exit_code"] == 1
    assert [r["outcome"] for r in gate["results"]] == ["fail", "pass", "inconclusive"]
    suites = ET.parse(run.root / "gate.xml").getroot()
    assert suites.tag == "testsuites"
    assert (suites.get("tests"), suites.get("failures"), suites.get("skipped")) == ("3", "1", "1")
    cases = suites.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["max_grade_drop 0.3", "min_win_rate 0.25", "max_kl 0.2"]
    assert [c.get("classname") for c in cases] == ["judge.gate.compressed"] * 3
    assert cases[0].find("failure") is not None and cases[0].find("skipped") is None
    assert cases[1].find("failure") is None and cases[1].find("skipped") is None
    assert cases[2].find("skipped") is not None
    assert cases[2].find("skipped").get("message").startswith("inconclusive:")
    md = (run.root / "gate.md").read_text()
    assert md.startswith("### judge gate: ❌ fail")
    assert "| compressed | max-grade-drop | 0.3 |" in md and "⚠️ inconclusive" in md


def test_junit_and_markdown_escape_hostile_text(card) -> None:
    report = evaluate_gate(card, {"max_kl": 0.2})
    hostile = report.model_copy(update={"run": 'x"<script>&|', "verdict": "a | <b> \n c"})
    root = ET.fromstring(junit_xml(hostile).split("\n", 1)[1])
    assert root.find("./testsuite/properties/property").get("value") == 'x"<script>&|'
    md = markdown_summary(hostile)
    assert "<script>" not in md and "<b>" not in md and "\\|" in md


def test_compare_gate_specs() -> None:
    assert parse_gate_specs(["max-grade-drop=0.3", "max-kl=0.05", "min_recovery=0.95"]) == {
        "max_grade_drop": 0.3, "max_kl": 0.05, "min_recovery": 0.95}
    for bad in (["max-grade-drop"], ["max-nonsense=1"], ["max-kl=lots"], ["min-win-rate=2"]):
        with pytest.raises(ConfigError):
            parse_gate_specs(bad)
