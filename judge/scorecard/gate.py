"""`judge gate`: a scorecard as a non-inferiority check for CI, with JUnit XML and a Markdown summary.

Each criterion compares one statistic's 95% interval (the scorecard's, two-sided, so each bound is
a one-sided 97.5% bound, the usual non-inferiority convention) with a margin:

  criterion                 statistic (per compressed role)                         passes when
  ``max_grade_drop D``      baseline - compressed mean grade, paired (grade rows)   upper bound <= D
  ``min_recovery R``        compressed mean / baseline mean grade (llm-compressor)  lower bound >= R
  ``min_win_rate W``        the compressed model's win rate, swapped games          lower bound >= W
  ``max_kl K``              token-weighted mean KL(baseline || compressed), nats    upper bound <= K
  ``max_flip_rate F``       share of items whose correctness flipped (checked flips upper bound <= F
                            when the run has them, else the judge's)
  ``min_judge_sensitivity`` the judge's self-test: every sensitivity measured       lower bound >= S

A criterion **fails** when its whole interval lies beyond the margin (the lower bound above a
maximum, the upper bound below a minimum), and is **inconclusive** otherwise -- including when
there is no interval (too little data, no judge, no self-test) and, for the judge's criteria
(grade drop, recovery, win rate, the judge's flips), when the judge failed its self-test: a judge
that cannot see planted degradations cannot show non-inferiority either. The gate fails when any
criterion fails (exit code 1), is inconclusive when none fails but one is inconclusive (exit code
3), and passes otherwise (exit code 0); bad input stays exit code 2.

Files (`write_gate`): ``gate.json`` (`GateReport`), ``gate.xml`` (JUnit: one test case per role and
criterion, ``<failure>`` for a fail, ``<skipped>`` for an inconclusive one, so CI systems show the
result natively) and ``gate.md`` (a short table for a pull-request comment).
"""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

from judge.schemas import Record
from judge.scorecard.schema import Proportion, Scorecard, Section
from judge.stats import CI

Outcome = Literal["pass", "fail", "inconclusive"]
EXIT_CODES: dict[str, int] = {"pass": 0, "fail": 1, "inconclusive": 3}
GATE_VERSION = 1
CRITERIA: dict[str, tuple[str, str]] = {  # name -> (direction, what is measured)
    "max_grade_drop": ("max", "grade drop (baseline - compressed, paired mean of 1-10 grades)"),
    "min_recovery": ("min", "recovery (compressed / baseline mean grade)"),
    "min_win_rate": ("min", "win rate of the compressed model (swapped games)"),
    "max_kl": ("max", "mean KL(baseline || compressed), nats"),
    "max_flip_rate": ("max", "flip rate (items whose correctness changed)"),
    "min_judge_sensitivity": ("min", "the judge's self-test sensitivity"),
}
_JUDGE_CRITERIA = {"max_grade_drop", "min_recovery", "min_win_rate"}


class CriterionResult(Record):
    role: str
    criterion: str  # e.g. "max_grade_drop"
    margin: float
    statistic: str
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    level: float | None = None
    outcome: Outcome
    message: str


class GateReport(Record):
    """``RUN/gate.json``."""

    format_version: int = GATE_VERSION
    run: str
    created: float
    outcome: Outcome
    exit_code: int
    criteria: dict[str, float]  # criterion -> margin, as asked
    results: list[CriterionResult]
    verdict: str  # the scorecard's headlines


def _num(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.4g}"


def _decide(name: str, margin: float, estimate: float, low: float, high: float) -> Outcome:
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    if CRITERIA[name][0] == "max":
        return "pass" if high <= margin else "fail" if low > margin else "inconclusive"
    return "pass" if low >= margin else "fail" if high < margin else "inconclusive"


def _from_interval(role: str, name: str, margin: float, interval: tuple[float, float, float, float] | None,
                   why_none: str, blind: str | None = None) -> CriterionResult:
    """A result from (estimate, low, high, level), or inconclusive with ``why_none``."""
    stat = CRITERIA[name][1]
    if interval is None:
        return CriterionResult(role=role, criterion=name, margin=margin, statistic=stat,
                               outcome="inconclusive", message=why_none)
    est, low, high, level = interval
    outcome = _decide(name, margin, est, low, high)
    sign = "<=" if CRITERIA[name][0] == "max" else ">="
    message = (f"{stat}: {_num(est)} [{_num(low)}, {_num(high)}] ({100 * level:.0f}% CI); "
               f"needs {sign} {margin:g}: {outcome}")
    if math.isnan(low) or math.isnan(high):
        message = f"{stat}: {_num(est)} with no interval (too little data): inconclusive"
    if blind is not None and outcome != "inconclusive":
        outcome, message = "inconclusive", f"{message}; but {blind}: inconclusive"
    return CriterionResult(role=role, criterion=name, margin=margin, statistic=stat, estimate=est,
                           low=low, high=high, level=level, outcome=outcome, message=message)


def _ci(ci: CI | None) -> tuple[float, float, float, float] | None:
    return None if ci is None else (ci.estimate, ci.low, ci.high, ci.level)


def _sensitivity(card: Scorecard) -> tuple[float, float, float, float] | None:
    """The weakest sensitivity the self-test measured (by its lower bound)."""
    t = card.self_test
    props: list[Proportion] = [p for p in (t.detected, t.graded_lower) if p is not None] if t else []
    if not props:
        return None
    p = min(props, key=lambda x: x.low)
    return (p.estimate, p.low, p.high, p.level)


def evaluate_gate(card: Scorecard, criteria: dict[str, float], *, roles: list[str] | None = None
             ) -> GateReport:
    """Check every criterion for every compressed role (or ``roles``)."""
    unknown = sorted(set(criteria) - set(CRITERIA))
    if unknown:
        raise ValueError(f"unknown gate criteria: {', '.join(unknown)}")
    sections: list[Section] = [s for s in card.sections if roles is None or s.role in roles]
    results: list[CriterionResult] = []
    for sec in sections:
        q, b = sec.quality, sec.behaviour
        blind = ("the judge failed its self-test" if q.self_test == "failed" else
                 "no judge was run" if q.self_test == "no judge" else None)
        for name, margin in criteria.items():
            if name == "max_grade_drop":
                d = sec.grades[0].delta if sec.grades and sec.grades[0].n else None
                iv = None if d is None else (-d.estimate, -d.high, -d.low, d.level)
                results.append(_from_interval(sec.role, name, margin, iv, "no item was graded for "
                                              "both models", blind))
            elif name == "min_recovery":
                results.append(_from_interval(sec.role, name, margin, _ci(q.recovery),
                                              "no item was graded for both models", blind))
            elif name == "min_win_rate":
                h = sec.head_to_head
                results.append(_from_interval(sec.role, name, margin, _ci(h.win_rate if h else None),
                                              "no swapped games were judged ok", blind))
            elif name == "max_kl":
                results.append(_from_interval(sec.role, name, margin, _ci(b.kl_mean),
                                              "no divergence was computed (judge diverge)"))
            elif name == "max_flip_rate":
                checked = b.flip_rate is not None
                results.append(_from_interval(
                    sec.role, name, margin, _ci(b.flip_rate if checked else q.flip_rate),
                    "no item has a correctness verdict on both sides",
                    None if checked else blind))
            else:
                why = ("the judgments were imported: the judge was not self-tested"
                       if q.self_test == "imported" else "no self-test (no judge, or --probes 0)")
                results.append(_from_interval(sec.role, name, margin, _sensitivity(card), why))
    if not sections:
        outcome: Outcome = "inconclusive"
    elif any(r.outcome == "fail" for r in results):
        outcome = "fail"
    elif any(r.outcome == "inconclusive" for r in results):
        outcome = "inconclusive"
    else:
        outcome = "pass"
    verdict = "\n".join(f"{s.role}: {s.verdict.headline}" for s in sections)
    return GateReport(run=card.provenance.run, created=time.time(), outcome=outcome,
                      exit_code=EXIT_CODES[outcome], criteria=dict(criteria), results=results,
                      verdict=verdict or "no compressed role to check")


# --------------------------------------------------------------------------- files


def junit_xml(report: GateReport) -> str:
    """JUnit XML: a test suite per role, a test case per criterion (failure / skipped / passed)."""
    fails = sum(r.outcome == "fail" for r in report.results)
    skips = sum(r.outcome == "inconclusive" for r in report.results)
    root = ET.Element("testsuites", name="judge gate", tests=str(len(report.results)),
                      failures=str(fails), errors="0", skipped=str(skips), time="0")
    for role in dict.fromkeys(r.role for r in report.results):
        rows = [r for r in report.results if r.role == role]
        suite = ET.SubElement(root, "testsuite", name=f"judge gate: {report.run}: {role}",
                              tests=str(len(rows)), failures=str(sum(r.outcome == "fail" for r in rows)),
                              errors="0", skipped=str(sum(r.outcome == "inconclusive" for r in rows)),
                              time="0")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="run", value=report.run)
        ET.SubElement(props, "property", name="outcome", value=report.outcome)
        for r in rows:
            case = ET.SubElement(suite, "testcase", classname=f"judge.gate.{role}",
                                 name=f"{r.criterion} {r.margin:g}", time="0")
            if r.outcome == "fail":
                ET.SubElement(case, "failure", message=r.message, type="fail").text = r.message
            elif r.outcome == "inconclusive":
                ET.SubElement(case, "skipped", message=f"inconclusive: {r.message}")
            ET.SubElement(case, "system-out").text = r.message
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


_MARK = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "⚠️ inconclusive"}


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def markdown_summary(report: GateReport) -> str:
    """A short Markdown table for a pull-request comment."""
    lines = [f"### judge gate: {_MARK[report.outcome]} — `{_md(report.run)}`", "",
             "| role | criterion | margin | estimate [95% CI] | result |", "|---|---|---:|---|---|"]
    for r in report.results:
        ci = (f"{_num(r.estimate)} [{_num(r.low)}, {_num(r.high)}]" if r.estimate is not None
              else "n/a")
        lines.append(f"| {_md(r.role)} | {r.criterion.replace('_', '-')} | {r.margin:g} | {ci} | "
                     f"{_MARK[r.outcome]} |")
    lines += ["", *(f"> {_md(line)}" for line in report.verdict.splitlines()), ""]
    notes = [r for r in report.results if r.outcome != "pass"]
    if notes:
        lines += ["<details><summary>Why</summary>", ""]
        lines += [f"- {_md(r.role)} {r.criterion.replace('_', '-')}: {_md(r.message)}" for r in notes]
        lines += ["", "</details>", ""]
    return "\n".join(lines)


def write_gate(report: GateReport, root: Path, *, json_path: Path | None = None,
               junit_path: Path | None = None, markdown_path: Path | None = None
               ) -> dict[str, Path]:
    """Write gate.json, gate.xml and gate.md (into ``root`` unless paths are given)."""
    from judge.store import write_atomic

    paths = {"json": json_path or root / "gate.json", "junit": junit_path or root / "gate.xml",
             "markdown": markdown_path or root / "gate.md"}
    write_atomic(paths["json"], report.model_dump_json(indent=1) + "\n")
    write_atomic(paths["junit"], junit_xml(report))
    write_atomic(paths["markdown"], markdown_summary(report))
    return paths
