"""The check stage: grade every checkable answer turn of a run by code, into ``RUN/checks/``.

For each answer role, each question whose set gives a turn a ``check`` gets one `CheckResult` per
checkable turn in ``RUN/checks/<role>.jsonl``, appended as each question finishes; a rerun skips
the (question, turn) items already checked for the same answer (``answer_id``); a regenerated
answer is checked again, and readers take the last row of an item. No model and no judge: cheap, CPU only. A check that
cannot decide (its sandboxed code hit a limit) is recorded as ``error`` and the stage goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from judge.check.grade import check_turn
from judge.check.sandbox import Limits
from judge.errors import RunFolderError
from judge.schemas import Answer, CheckResult, Question
from judge.store import Run, append_jsonl, read_jsonl


@dataclass(frozen=True)
class CheckSummary:
    role: str
    path: Path
    checked: int  # items checked by this call
    skipped: int  # items already in the file
    passed: int  # of those checked by this call
    failed: int
    errors: int
    seconds: float

    def short(self) -> str:
        return (f"checks/{self.role}: {self.checked} checked ({self.passed} pass, {self.failed} "
                f"fail, {self.errors} error), {self.skipped} already there, {self.seconds:.1f} s")


def checks_path(run: Run, role: str) -> Path:
    return run.root / "checks" / f"{role}.jsonl"


def check_role(run: Run, role: str, questions: list[Question], limits: Limits = Limits()
               ) -> CheckSummary:
    """Check every not yet checked answer turn of ``role``."""
    started = time.monotonic()
    path = checks_path(run, role)
    done = {(str(r.question_id), r.turn, r.answer_id) for r in read_jsonl(path, CheckResult)} \
        if path.is_file() else set()
    answers = {a.key: a for a in read_jsonl(run.answers_path(role), Answer)}
    checked = passed = failed = errors = skipped = 0
    for q in questions:
        answer = answers.get(q.key)
        if answer is None or not q.check:
            continue
        rows = []
        for turn, check in enumerate(q.check, start=1):
            if check is None or turn > len(answer.turns):
                continue
            if (q.key, turn, answer.answer_id) in done:
                skipped += 1
                continue
            t0 = time.monotonic()
            out = check_turn(check, answer.turns, turn, limits)
            rows.append(CheckResult(question_id=q.question_id, turn=turn, role=role,
                                    category=q.category, kind=check.kind, status=out.status,
                                    answer_id=answer.answer_id,
                                    extracted=out.extracted, reason=out.reason,
                                    duration_s=round(time.monotonic() - t0, 4), tstamp=time.time()))
        if rows:
            append_jsonl(path, rows)
            checked += len(rows)
            passed += sum(r.status == "pass" for r in rows)
            failed += sum(r.status == "fail" for r in rows)
            errors += sum(r.status == "error" for r in rows)
    return CheckSummary(role, path, checked, skipped, passed, failed, errors,
                        time.monotonic() - started)


def check_run(run: Run, roles: list[str] | None = None, limits: Limits = Limits()
              ) -> list[CheckSummary]:
    """Check the answers of ``roles`` (default: every role with answers) against the run's set."""
    from judge.questions import run_questions

    questions = run_questions(run)
    all_roles = run.answer_roles()
    if not all_roles:
        raise RunFolderError("no answers to check: run `judge generate` first", path=run.root)
    unknown = [r for r in roles or [] if r not in all_roles]
    if unknown:
        raise RunFolderError(f"no answers for role {unknown[0]!r} (have: {', '.join(all_roles)})",
                             path=run.root)
    if not any(q.check for q in questions):
        return []
    run.mark_stage("check", started=True)
    out = [check_role(run, role, questions, limits) for role in roles or all_roles]
    run.mark_stage("check", finished=True)
    return out
