"""Verify every reference answer in a question set by recomputing it independently.

Usage:  python questions/verify.py [SET.jsonl ...]      (default: questions/judge-80.jsonl)
Import: ``verify.verify(path) -> Report``; raises ``VerificationFailed`` when any check fails.

Every question in a reference-graded category (math, reasoning, coding) must carry a reference for
each turn, and every such reference must have a registered check in ``refchecks/``:
  * math      - the stated final value ("... the answer is 17/64.") is compared with an exact
                recomputation (enumeration, fraction arithmetic, a Markov chain, a scan);
  * reasoning - the puzzle's clues are encoded and every possibility is enumerated or searched;
                the stated solution must be exactly the set of solutions found;
  * coding    - the reference's fenced code block is executed and tested against an independent
                oracle on hand-picked and seeded random inputs (SQL runs on in-memory SQLite).
A check receives only the reference text and parses nothing from it except the stated result.

Every turn's machine ``check`` (the question format's ``check`` field, applied by `judge.check`)
is also proved: the turn's reference must pass its own check, exactly as a model's answer would be
graded (code in the sandbox, SQL on in-memory SQLite).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # so that `refchecks` imports when this file is loaded by path
    sys.path.insert(0, str(HERE))

if str(HERE.parent) not in sys.path:  # the project root, for `judge.check`
    sys.path.insert(0, str(HERE.parent))

import refchecks  # noqa: E402
from refchecks import coding_refs_1, coding_refs_2, math_refs, reasoning_refs  # noqa: E402,F401 (register checks)

REFERENCE_CATEGORIES = ("math", "reasoning", "coding")
DEFAULT_SET = HERE / "judge-80.jsonl"


@dataclass(frozen=True)
class CheckResult:
    question_id: int
    turn: int
    category: str
    ok: bool
    detail: str  # what was verified, or why it failed


@dataclass
class Report:
    path: Path
    results: list[CheckResult] = field(default_factory=list)  # the refchecks, one per turn reference
    machine: list[CheckResult] = field(default_factory=list)  # each reference against its own check

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results + self.machine if not r.ok]

    @property
    def references_checked(self) -> int:
        """Number of questions all of whose turn references passed."""
        by_q: dict[int, bool] = {}
        for r in self.results:
            by_q[r.question_id] = by_q.get(r.question_id, True) and r.ok
        return sum(by_q.values())

    def summary(self) -> str:
        lines = [f"{'ok ' if r.ok else 'FAIL'} {r.question_id} turn {r.turn} ({r.category}): {r.detail}"
                 for r in self.results + self.machine]
        bad_refs = sum(not r.ok for r in self.results)
        lines.append(f"{self.path.name}: {len(self.results) - bad_refs}/{len(self.results)} "
                     f"turn references verified, {self.references_checked} questions fully verified; "
                     f"{sum(r.ok for r in self.machine)}/{len(self.machine)} references pass their "
                     "own machine check")
        return "\n".join(lines)


class VerificationFailed(AssertionError):
    def __init__(self, report: Report):
        self.report = report
        bad = "; ".join(f"{r.question_id} turn {r.turn}: {r.detail}" for r in report.failures)
        super().__init__(f"{len(report.failures)} reference check(s) failed in {report.path}: {bad}")


def _rows(path: Path) -> list[dict[str, object]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def run_checks(path: Path = DEFAULT_SET) -> Report:
    """Run every applicable check on the set at ``path`` and return the report (never raises on a
    failing check; a missing reference or a missing check is itself a failed result)."""
    report = Report(path=Path(path))
    for row in _rows(Path(path)):
        category = str(row["category"])
        if category not in REFERENCE_CATEGORIES:
            continue
        qid = int(row["question_id"])  # type: ignore[call-overload]
        turns = row["turns"]
        refs = row.get("reference")
        if not isinstance(refs, list) or not isinstance(turns, list) or len(refs) != len(turns):
            report.results.append(CheckResult(qid, 0, category, False, "missing or incomplete reference"))
            continue
        for turn, ref in enumerate(refs, start=1):
            fn = refchecks.CHECKS.get((qid, turn))
            if fn is None:
                report.results.append(CheckResult(qid, turn, category, False, "no check registered"))
                continue
            try:
                detail = fn(str(ref))
            except Exception as err:  # a crashing check is a failed check, reported with its reason
                report.results.append(CheckResult(qid, turn, category, False, f"{type(err).__name__}: {err}"))
            else:
                report.results.append(CheckResult(qid, turn, category, True, detail))
        report.machine.extend(_machine_checks(row, qid, category))
    return report


def _machine_checks(row: dict[str, object], qid: int, category: str) -> list[CheckResult]:
    """Each turn's machine check applied to the turn's reference: the reference must pass."""
    from judge.check import check_turn
    from judge.schemas import Question

    q = Question.model_validate(row)
    if not q.check or q.reference is None:
        return []
    out = []
    for turn, check in enumerate(q.check, start=1):
        if check is None:
            continue
        res = check_turn(check, q.reference, turn)
        detail = f"{check.kind} check on the reference: {res.status}"
        detail += f" ({res.reason or res.extracted})" if (res.reason or res.extracted) else ""
        out.append(CheckResult(qid, turn, category, res.status == "pass", detail))
    return out


def verify(path: Path = DEFAULT_SET) -> Report:
    """Run the checks and raise ``VerificationFailed`` if any fails; return the report otherwise."""
    report = run_checks(path)
    if report.failures:
        raise VerificationFailed(report)
    return report


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [DEFAULT_SET]
    status = 0
    for path in paths:
        report = run_checks(path)
        print(report.summary())
        status = status or (1 if report.failures else 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
