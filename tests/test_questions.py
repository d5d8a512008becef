"""Question loader: FastChat files, folders with reference answers, and one-line errors."""

from __future__ import annotations

import json

import pytest

from judge.errors import QuestionSetError
from judge.questions import load_questions


def _write(p, rows):
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                 encoding="utf-8")
    return p


def test_loads_file_with_inline_reference(two_questions):
    info, qs = load_questions(str(two_questions))
    assert [q.key for q in qs] == ["1", "2"]
    assert qs[1].reference == ["5", "20"] and qs[0].reference is None
    assert info.n_questions == 2 and info.categories == {"math": 1, "writing": 1}
    assert len(info.sha256) == 64


def test_hash_changes_with_content(tmp_path, two_questions):
    a, _ = load_questions(str(two_questions))
    other = _write(tmp_path / "b.jsonl", [{"question_id": 1, "category": "x", "turns": ["hi"]}])
    b, _ = load_questions(str(other))
    assert a.sha256 != b.sha256


def test_fastchat_folder_merges_reference_answers(tmp_path):
    d = tmp_path / "mt_bench"
    (d / "reference_answer").mkdir(parents=True)
    _write(d / "question.jsonl", [{"question_id": 7, "category": "math", "turns": ["a?", "b?"]}])
    _write(d / "reference_answer" / "gpt-4.jsonl", [
        {"question_id": 7, "answer_id": "x", "model_id": "gpt-4", "tstamp": 1.0,
         "choices": [{"index": 0, "turns": ["ra", "rb"]}]}])
    info, qs = load_questions(str(d))
    assert qs[0].reference == ["ra", "rb"] and info.name == "mt_bench"


@pytest.mark.parametrize(
    "rows, line, fragment",
    [
        ([{"question_id": 1, "category": "a", "turns": ["x"]}, {"question_id": 1, "category": "a", "turns": ["y"]}],
         2, "duplicate question_id '1' (first on line 1)"),
        ([{"question_id": 1, "turns": ["x"]}], 1, "category"),
        ([{"question_id": 1, "category": "a", "turns": "x"}], 1, "turns"),
        ([{"question_id": 1, "category": "a", "turns": []}], 1, "turns"),
        ([{"question_id": 1, "category": "a", "turns": ["  "]}], 1, "turn 1 is empty"),
        (['{"question_id": 1,'], 1, "not valid JSON"),
        ([[1, 2]], 1, "JSON object"),
        ([{"question_id": 1, "category": "a", "turns": ["x", "y"], "reference": ["r"]}], 1,
         "reference has 1 entries for 2 turns"),
        ([{"question_id": 1, "category": "a", "turns": ["x" * 100_001]}], 1, "over the limit"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, rows, line, fragment):
    p = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(QuestionSetError) as err:
        load_questions(str(p))
    msg = str(err.value)
    assert msg.startswith(f"{p}:{line}:") and fragment in msg and "\n" not in msg


def test_empty_and_missing(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("\n", encoding="utf-8")
    with pytest.raises(QuestionSetError, match="holds no questions"):
        load_questions(str(p))
    with pytest.raises(QuestionSetError, match="not found"):
        load_questions(str(tmp_path / "nope.jsonl"))
    with pytest.raises(QuestionSetError, match="unknown question set 'no-such-set'"):
        load_questions("no-such-set")


def test_named_sets_dir_override(tmp_path, monkeypatch, two_questions):
    monkeypatch.setenv("JUDGE_QUESTIONS_DIR", str(tmp_path))
    (tmp_path / "mine.jsonl").write_bytes(two_questions.read_bytes())
    info, qs = load_questions("mine")
    assert info.name == "mine" and len(qs) == 2


def test_reads_fastchat_mtbench(mtbench_dir):
    info, qs = load_questions(str(mtbench_dir / "question.jsonl"),
                              references=mtbench_dir / "reference_answer" / "gpt-4.jsonl")
    assert info.n_questions == 80 and all(len(q.turns) == 2 for q in qs)
    assert set(info.categories.values()) == {10}
    with_ref = [q for q in qs if q.reference]
    # 30 reference answers (ids 101-130) plus inline references in question.jsonl itself
    assert {q.key for q in with_ref} >= {str(i) for i in range(101, 131)}
    folder_info, folder_qs = load_questions(str(mtbench_dir))
    assert [q.reference for q in folder_qs] == [q.reference for q in qs]
