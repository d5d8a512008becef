"""The project's own question sets (questions/*.jsonl): format, balance, and verified references."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from judge.questions import available_sets, load_questions
from judge.schemas import MT_BENCH_CATEGORIES, REFERENCE_CATEGORIES

QDIR = Path(__file__).resolve().parents[1] / "questions"
MTBENCH_QUESTIONS = Path(__file__).resolve().parents[2] / "shared" / "mtbench_data" / "question.jsonl"


def rows(name: str) -> list[dict]:
    with open(QDIR / f"{name}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def verify_module() -> ModuleType:
    import importlib.util

    spec = importlib.util.spec_from_file_location("judge_questions_verify", QDIR / "verify.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- judge-80


def test_judge80_ids_and_balance() -> None:
    qs = rows("judge-80")
    ids = [q["question_id"] for q in qs]
    assert all(type(i) is int for i in ids)
    assert ids == list(range(1001, 1081))  # unique, grouped, never colliding with MT-Bench's 81-160
    assert Counter(q["category"] for q in qs) == {c: 10 for c in MT_BENCH_CATEGORIES}
    # grouped by category, in MT-Bench's category order
    assert [qs[i * 10]["category"] for i in range(8)] == list(MT_BENCH_CATEGORIES)
    assert all(len({q["category"] for q in qs[i * 10:(i + 1) * 10]}) == 1 for i in range(8))


def test_judge80_turns_and_fields() -> None:
    for q in rows("judge-80"):
        assert set(q) <= {"question_id", "category", "turns", "reference", "rationale", "check"}, \
            q["question_id"]
        turns = q["turns"]
        assert len(turns) == 2 and all(isinstance(t, str) and t.strip() for t in turns), q["question_id"]
        assert turns[0] != turns[1]
        if q["category"] in REFERENCE_CATEGORIES:
            ref = q.get("reference")
            assert isinstance(ref, list) and len(ref) == 2 and all(r.strip() for r in ref), q["question_id"]
        else:
            assert "reference" not in q, f"{q['question_id']}: references are for math/reasoning/coding"
        if q["category"] == "reasoning":
            rat = q.get("rationale")
            assert isinstance(rat, list) and len(rat) == 2 and all(r.strip() for r in rat), q["question_id"]
        if q["category"] == "coding":
            for ref in q["reference"]:
                assert len(re.findall(r"```(?:python|sql)\n", ref)) == 1, q["question_id"]


def test_math_and_reasoning_references_state_a_final_answer() -> None:
    for q in rows("judge-80"):
        if q["category"] == "math":
            assert all("answer is" in r for r in q["reference"]), q["question_id"]


def test_questions_are_self_contained() -> None:
    """No question needs the internet, an image or an attached file."""
    banned = re.compile(r"https?://|www\.|\battached\b|\bthe image\b|\bthe picture\b|\bupload", re.I)
    for q in rows("judge-80"):
        for turn in q["turns"]:
            assert not banned.search(turn), (q["question_id"], banned.search(turn))
    for q in rows("judge-80"):
        if q["category"] == "extraction":  # the text to extract from is inside the question
            assert len(q["turns"][0]) > 400, q["question_id"]


def test_no_text_shared_with_mtbench() -> None:
    """Our questions are written here: no run of 8 words in common with MT-Bench's questions."""
    if not MTBENCH_QUESTIONS.is_file():
        pytest.skip(f"MT-Bench questions not available at {MTBENCH_QUESTIONS}")

    def shingles(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"[a-z0-9']+", text.lower())
        return {tuple(words[i:i + 8]) for i in range(len(words) - 7)}

    theirs: set[tuple[str, ...]] = set()
    with open(MTBENCH_QUESTIONS, encoding="utf-8") as fh:
        for line in fh:
            for turn in json.loads(line)["turns"]:
                theirs |= shingles(turn)
    for q in rows("judge-80"):
        for turn in q["turns"]:
            common = shingles(turn) & theirs
            assert not common, (q["question_id"], sorted(common)[:3])


# --------------------------------------------------------------------------- smoke


def test_smoke_is_a_verbatim_subset_with_one_per_category() -> None:
    full = {q["question_id"]: q for q in rows("judge-80")}
    smoke = rows("smoke")
    assert len(smoke) == 8
    assert sorted(q["category"] for q in smoke) == sorted(MT_BENCH_CATEGORIES)
    for q in smoke:
        assert q == full[q["question_id"]]


# --------------------------------------------------------------------------- verification


def test_verifier_checks_all_30_references(verify_module: ModuleType) -> None:
    report = verify_module.verify(QDIR / "judge-80.jsonl")
    assert report.failures == []
    assert len(report.results) == 60  # 30 questions x 2 turns
    assert report.references_checked == 30
    assert Counter(r.category for r in report.results) == {"math": 20, "reasoning": 20, "coding": 20}
    # every reference passes its own machine check; two reasoning turns have none (an argument and
    # a full table of results are not machine-checkable)
    assert len(report.machine) == 58 and all(r.ok for r in report.machine)
    assert Counter(r.category for r in report.machine) == {"math": 20, "reasoning": 18, "coding": 20}


def test_verifier_checks_smoke(verify_module: ModuleType) -> None:
    report = verify_module.verify(QDIR / "smoke.jsonl")
    assert report.references_checked == 3  # its reasoning, math and coding questions


def _mutated(tmp_path: Path, edits: dict[tuple[int, int], tuple[str, str]], drop_ref: int | None = None) -> Path:
    """A set holding only the edited questions (and ``drop_ref``, stripped of its reference)."""
    out = []
    for q in rows("judge-80"):
        if q["question_id"] not in {qid for qid, _ in edits} | {drop_ref}:
            continue
        for (qid, turn), (old, new) in edits.items():
            if q["question_id"] == qid:
                assert old in q["reference"][turn - 1], (qid, old)
                q["reference"][turn - 1] = q["reference"][turn - 1].replace(old, new, 1)
        if q["question_id"] == drop_ref:
            del q["reference"]
        out.append(q)
    path = tmp_path / "mutated.jsonl"
    path.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in out), encoding="utf-8")
    return path


def test_verifier_catches_wrong_references(verify_module: ModuleType, tmp_path: Path) -> None:
    edits = {
        (1031, 1): ("the answer is 2/7", "the answer is 3/7"),                  # wrong probability
        (1040, 2): ("60/11 minutes past 4", "60/11 minutes past 3"),            # wrong hour
        (1028, 1): ("The answer is Mira", "The answer is Noor"),                # wrong culprit
        (1026, 2): ("527, 725 and 825", "527 and 725"),                         # incomplete list
        (1024, 1): ("(3, 0) pour", "(3, 1) pour"),                              # illegal jug move
        (1044, 1): ("if a[mid] < x:", "if a[mid] <= x:"),                       # the original bug
        (1046, 2): ("AND e.salary < (SELECT", "AND e.salary <= (SELECT"),       # SQL: not second
        (1047, 2): ("return now < written_at", "return now <= written_at"),      # off-by-one expiry
    }
    report = verify_module.run_checks(_mutated(tmp_path, edits, drop_ref=1035))
    failed = {(r.question_id, r.turn) for r in report.failures}
    assert failed == set(edits) | {(1035, 0)}
    assert {(r.question_id, r.turn) for r in report.results if r.ok} == {(q, 3 - t) for q, t in edits}
    with pytest.raises(verify_module.VerificationFailed, match="1031 turn 1"):
        verify_module.verify(_mutated(tmp_path, {(1031, 1): edits[(1031, 1)]}))


def test_every_reference_has_exactly_one_check(verify_module: ModuleType) -> None:
    import refchecks  # importable once verify.py is loaded

    wanted = {(q["question_id"], t) for q in rows("judge-80") if q["category"] in REFERENCE_CATEGORIES
              for t in (1, 2)}
    assert set(refchecks.CHECKS) == wanted


# --------------------------------------------------------------------------- judge's loader


def test_loader_reads_sets_by_name() -> None:
    assert {"judge-80", "smoke"} <= set(available_sets())
    info, qs = load_questions("judge-80")
    assert info.name == "judge-80" and info.n_questions == 80 == len(qs)
    assert info.categories == {c: 10 for c in MT_BENCH_CATEGORIES}
    by_id = {q.question_id: q for q in qs}
    assert by_id[1031].reference is not None and by_id[1031].reference[0].endswith("the answer is 2/7.")
    assert by_id[1021].rationale is not None and len(by_id[1021].rationale) == 2
    assert by_id[1001].reference is None

    info, qs = load_questions("smoke")
    assert info.n_questions == 8 and sorted(info.categories) == sorted(MT_BENCH_CATEGORIES)


# --------------------------------------------------------------------------- machine checks


def test_every_math_reasoning_coding_turn_has_a_check_but_two() -> None:
    unchecked = set()
    for q in rows("judge-80"):
        if q["category"] in REFERENCE_CATEGORIES:
            assert len(q["check"]) == 2, q["question_id"]
            unchecked |= {(q["question_id"], t) for t, c in enumerate(q["check"], 1) if c is None}
        elif q["category"] != "extraction":
            assert "check" not in q, q["question_id"]
    assert unchecked == {(1022, 2), (1030, 2)}
    extraction = [q for q in rows("judge-80") if q["category"] == "extraction"]
    assert all(q["check"][0] is not None for q in extraction)  # every extraction turn 1 asks for JSON


def test_verifier_catches_a_reference_failing_its_machine_check(verify_module: ModuleType,
                                                                 tmp_path: Path) -> None:
    # the refcheck of 1034 turn 1 recomputes 72/5; the machine check reads the stated value
    q = next(q for q in rows("judge-80") if q["question_id"] == 1034)
    q["check"][0] = {"kind": "number", "value": "15"}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(q) + "\n", encoding="utf-8")
    report = verify_module.run_checks(path)
    assert [(r.question_id, r.turn) for r in report.failures] == [(1034, 1)]
    assert "expected 15" in report.failures[0].detail


def test_a_check_per_turn_is_validated(tmp_path: Path) -> None:
    from judge.errors import QuestionSetError

    base = {"question_id": 1, "category": "math", "turns": ["a", "b"]}
    cases = {
        "check has 1 entries for 2 turns": [{"kind": "number", "value": "1"}],
        "not a number or fraction": [{"kind": "number", "value": "one"}, None],
        "exactly one of 'value' and 'values'": [{"kind": "number"}, None],
        "answer ['E'] not among the options": [{"kind": "choice", "options": ["A", "B"], "answer": ["E"]}, None],
        "kind": [{"kind": "regex", "pattern": "x"}, None],
        "Extra inputs": [{"kind": "python", "defines": ["f"], "tests": ["f()"], "shell": "rm"}, None],
    }
    for message, check in cases.items():
        path = tmp_path / "q.jsonl"
        path.write_text(json.dumps({**base, "check": check}) + "\n", encoding="utf-8")
        with pytest.raises(QuestionSetError, match=re.escape(message)) as err:
            load_questions(path)
        assert "q.jsonl:1" in str(err.value)
