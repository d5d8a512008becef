"""Load and validate question sets: the project's own (by name), or any FastChat ``question.jsonl``.

A set is named by
  * a bare name -> ``questions/<name>.jsonl`` in this project (``judge-80``, ``smoke``...),
  * a path to a ``.jsonl`` file in FastChat's question format,
  * a FastChat ``data/mt_bench``-style folder holding ``question.jsonl`` (and ``reference_answer/``).
Reference answers come inline (``reference``: one string per turn) or from a FastChat
``reference_answer/<model>.jsonl`` file, whose rows are model answers. Every error names file:line.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from judge.errors import InputFileError, QuestionSetError, RunFolderError
from judge.schemas import Answer, Question, QuestionSetInfo
from judge.store import Run, describe_validation_error, iter_jsonl_raw

MAX_TURN_CHARS = 100_000  # a turn longer than this is a mistake (a pasted file), not a question
MAX_QUESTIONS = 100_000


def questions_dir() -> Path:
    """Where named sets live: ``$JUDGE_QUESTIONS_DIR`` or the project's ``questions/`` folder."""
    env = os.environ.get("JUDGE_QUESTIONS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "questions"


def available_sets() -> list[str]:
    d = questions_dir()
    return sorted(p.stem for p in d.glob("*.jsonl")) if d.is_dir() else []


def resolve_question_path(spec: str | Path) -> tuple[Path, Path | None]:
    """Return (question file, reference file or None) for a set spec."""
    p = Path(spec)
    if p.is_dir():
        qfile = p / "question.jsonl"
        if not qfile.is_file():
            raise QuestionSetError("folder has no question.jsonl; give the file itself", path=p)
        ref_dir = p / "reference_answer"
        refs = sorted(ref_dir.glob("*.jsonl")) if ref_dir.is_dir() else []
        return qfile, (refs[0] if refs else None)
    if p.suffix == ".jsonl" or os.sep in str(spec) or "/" in str(spec):
        if not p.is_file():
            raise QuestionSetError("question file not found; check the path", path=p)
        return p, None
    named = questions_dir() / f"{spec}.jsonl"
    if named.is_file():
        return named, None
    known = ", ".join(available_sets()) or "none"
    raise QuestionSetError(f"unknown question set {str(spec)!r}; known sets: {known}, "
                           "or give a path to a FastChat question.jsonl")


def _parse_questions(path: Path) -> list[Question]:
    questions: list[Question] = []
    seen: dict[str, int] = {}
    try:
        rows = list(iter_jsonl_raw(path))
    except OSError as err:
        raise QuestionSetError(f"cannot read question file ({err.strerror})", path=path) from None
    except InputFileError as err:
        raise QuestionSetError(err.message, path=err.path, line=err.line) from None
    for lineno, obj in rows:
        if isinstance(obj.get("question_id"), bool):  # pydantic would take true for 1
            raise QuestionSetError("question_id must be an integer or a string", path=path, line=lineno)
        try:
            q = Question.model_validate(obj)
        except ValidationError as err:
            raise QuestionSetError(f"invalid question: {describe_validation_error(err)}",
                                   path=path, line=lineno) from None
        if q.key in seen:
            raise QuestionSetError(f"duplicate question_id {q.key!r} (first on line {seen[q.key]})",
                                   path=path, line=lineno)
        for i, turn in enumerate(q.turns, start=1):
            if len(turn) > MAX_TURN_CHARS:
                raise QuestionSetError(f"turn {i} is {len(turn)} characters, over the limit of "
                                       f"{MAX_TURN_CHARS}", path=path, line=lineno)
        if q.reference is not None and len(q.reference) != len(q.turns):
            raise QuestionSetError(f"reference has {len(q.reference)} entries for {len(q.turns)} turns",
                                   path=path, line=lineno)
        if q.check is not None and len(q.check) != len(q.turns):
            raise QuestionSetError(f"check has {len(q.check)} entries for {len(q.turns)} turns "
                                   "(one per turn, null where a turn is not checkable)",
                                   path=path, line=lineno)
        seen[q.key] = lineno
        questions.append(q)
        if len(questions) > MAX_QUESTIONS:
            raise QuestionSetError(f"more than {MAX_QUESTIONS} questions", path=path, line=lineno)
    if not questions:
        raise QuestionSetError("question file holds no questions", path=path)
    return questions


def _merge_references(questions: list[Question], ref_path: Path) -> list[Question]:
    by_id: dict[str, list[str]] = {}
    line_of: dict[str, int] = {}
    try:
        rows = list(iter_jsonl_raw(ref_path))
    except InputFileError as err:
        raise QuestionSetError(err.message, path=err.path, line=err.line) from None
    for lineno, obj in rows:
        try:
            ans = Answer.model_validate(obj)
        except ValidationError as err:
            raise QuestionSetError(f"invalid reference answer: {describe_validation_error(err)}",
                                   path=ref_path, line=lineno) from None
        by_id[ans.key] = ans.turns
        line_of[ans.key] = lineno
    out = []
    for q in questions:
        ref = by_id.get(q.key)
        if ref is not None and q.reference is None:
            ref = (ref + [""] * len(q.turns))[: len(q.turns)]
            try:  # validated like an inline reference (a lone surrogate is refused here)
                q = Question.model_validate({**q.model_dump(), "reference": ref})
            except ValidationError as err:
                raise QuestionSetError(f"invalid reference answer: {describe_validation_error(err)}",
                                       path=ref_path, line=line_of[q.key]) from None
        out.append(q)
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_questions(spec: str | Path, references: str | Path | None = None
                   ) -> tuple[QuestionSetInfo, list[Question]]:
    """Load a question set (see module docstring) and describe it for the manifest."""
    qpath, ref_path = resolve_question_path(spec)
    if references is not None:
        ref_path = Path(references)
        if not ref_path.is_file():
            raise QuestionSetError("reference answer file not found", path=ref_path)
    questions = _parse_questions(qpath)
    if ref_path is not None:
        questions = _merge_references(questions, ref_path)
    digest = hashlib.sha256(file_sha256(qpath).encode())
    if ref_path is not None:
        digest.update(file_sha256(ref_path).encode())
    name = qpath.stem if qpath.name != "question.jsonl" else qpath.parent.name
    info = QuestionSetInfo(
        name=name, path=str(qpath), sha256=digest.hexdigest(), n_questions=len(questions),
        categories=dict(sorted(Counter(q.category for q in questions).items())),
    )
    return info, questions


def run_questions(run: Run, spec: str | None = None, references: str | None = None) -> list[Question]:
    """The run's questions: ``spec`` if given, else the set its manifest names; either way checked
    against the hash the manifest recorded when the answers were made."""
    manifest = run.load_manifest()
    recorded = manifest.questions if manifest else None
    if spec is None:
        if recorded is None:
            raise RunFolderError("the run's manifest names no question set: run `judge generate` "
                                 "first, or pass --questions", path=run.root)
        if not Path(recorded.path).is_file():
            raise RunFolderError(f"the run's question file {recorded.path} is gone; restore it",
                                 path=run.root)
        spec = recorded.path
    info, questions = load_questions(spec, references)
    if recorded is not None and recorded.sha256 != info.sha256:
        raise RunFolderError(
            f"question set {info.name!r} ({info.sha256[:12]}) is not the one the answers were made "
            f"for ({recorded.name!r}, {recorded.sha256[:12]}); pass --questions/--references "
            "matching the run", path=run.manifest_path)
    return questions
