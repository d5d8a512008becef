"""Benchmark: the check stage on 160 answers (both turns of judge-80's 80 questions), no model.

Answers are synthesized: a math, reasoning or coding turn answers with its reference (correct), and
every ``--wrong``-th checkable turn with a wrong variant (the last number changed, the code's
functions replaced by stubs, the SQL's ORDER BY reversed, a JSON entry dropped); extraction turns
answer with JSON built from their check; other turns with a sentence (no check, no cost). The run
folder is then checked from scratch by `judge.check.check_run`, exactly as `judge check RUN`
would, and the time is printed with the count of sandboxed processes. Target: < 30 s.

Baseline measured in the same run: the same number of bare ``python -I -c pass`` processes, the
floor of a process per Python check; the ratio says how much the sandbox and the tests add.

    python bench/check.py [--wrong 4] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from judge.check import check_run, network_isolation  # noqa: E402
from judge.questions import load_questions  # noqa: E402
from judge.schemas import Answer, AnswerChoice, CheckResult  # noqa: E402
from judge.store import Run, append_jsonl, read_jsonl  # noqa: E402


def wrong(text: str, check: object) -> str:
    kind = getattr(check, "kind", None)
    if kind == "python":
        stubs = "\n".join(f"def {n}(*a, **k):\n    return None\n" for n in check.defines)  # type: ignore[attr-defined]
        return f"```python\n{stubs}```\n"
    if kind == "sql":
        return text.replace("ORDER BY d.name", "ORDER BY d.name DESC")
    if kind == "json":
        return "```json\n[]\n```\n"
    if kind == "choice":
        other = next(o for o in check.options if o not in check.answer)  # type: ignore[attr-defined]
        return text + f"\nThe answer is {other}."
    if kind in ("order", "mapping"):
        items = list(check.answer)  # type: ignore[attr-defined]
        return text + "\nThe answer is: " + ", ".join(reversed(items)) + "."
    nums = list(re.finditer(r"\d+", text))
    if nums:
        m = nums[-1]
        return text[:m.start()] + str(int(m.group()) + 1) + text[m.end():]
    return text + "\nThe answer is nobody."


def json_answer(check: object) -> str:
    required = getattr(check, "required", [])
    match = getattr(check, "match", [])
    count = getattr(check, "count", None)
    entries = [{**{k: None for k in required}, **m} for m in match] or [{k: "x" for k in required}]
    while count is not None and len(entries) < count:
        entries.append({k: "x" for k in required})
    value = entries if count is not None or len(match) > 1 or len(entries) > 1 else entries[0]
    return f"```json\n{json.dumps(value)}\n```\n"


def synthesize(run: Run, every_wrong: int) -> tuple[int, int]:
    info, questions = load_questions("judge-80")
    run.update_manifest(questions=info)
    rows, n_checkable, n_wrong = [], 0, 0
    for q in questions:
        turns = []
        for t in range(len(q.turns)):
            check = q.check[t] if q.check else None
            if q.reference:
                text = q.reference[t]
            elif check is not None and check.kind == "json":
                text = json_answer(check)
            else:
                text = "A short answer in prose."
            if check is not None:
                n_checkable += 1
                if n_checkable % every_wrong == 0:
                    text, n_wrong = wrong(text, check), n_wrong + 1
            turns.append(text)
        rows.append(Answer(question_id=q.question_id, answer_id=f"a{q.key}", model_id="synthetic",
                           tstamp=time.time(), role="baseline", category=q.category,
                           choices=[AnswerChoice(turns=turns)]))
    append_jsonl(run.answers_path("baseline"), rows)
    return n_checkable, n_wrong


def bare_processes(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wrong", type=int, default=4, help="every N-th checkable turn answers wrongly")
    ap.add_argument("--rounds", type=int, default=1, help="repeat and keep the fastest")
    args = ap.parse_args()
    best = None
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as d:
            run = Run(Path(d) / "run")
            n_checkable, n_wrong = synthesize(run, args.wrong)
            t0 = time.perf_counter()
            [summary] = check_run(run)
            took = time.perf_counter() - t0
            rows = read_jsonl(run.root / "checks" / "baseline.jsonl", CheckResult)
        if best is None or took < best[0]:
            best = (took, summary, rows, n_checkable, n_wrong)
    assert best is not None
    took, summary, rows, n_checkable, n_wrong = best
    n_py = sum(r.kind == "python" for r in rows)
    floor = bare_processes(n_py)
    by_kind: Counter[str] = Counter()
    secs: Counter[str] = Counter()
    for r in rows:
        by_kind[r.kind] += 1
        secs[r.kind] += r.duration_s
    print(f"answers: 160 turns of 80 questions, {n_checkable} checkable, {n_wrong} synthesized wrong")
    print(f"checked {summary.checked}: {summary.passed} pass, {summary.failed} fail, "
          f"{summary.errors} error (network isolation: {network_isolation()})")
    for kind in sorted(by_kind):
        print(f"  {kind:7s} {by_kind[kind]:3d} items  {secs[kind]:6.2f} s")
    print(f"check stage: {took:.2f} s for 160 answers (target < 30 s)")
    print(f"baseline: {n_py} bare `python -I -c pass` processes: {floor:.2f} s; "
          f"python checks / baseline = {secs['python'] / floor:.2f}x" if floor > 0 else "")
    expected_fail = n_wrong
    if summary.failed != expected_fail or summary.errors:
        print(f"NOTE: expected {expected_fail} failures and no errors")


if __name__ == "__main__":
    main()
