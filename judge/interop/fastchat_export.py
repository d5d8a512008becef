"""Export a run folder in FastChat's ``data/mt_bench`` layout, so FastChat's own tools read it.

Writes ``DIR/question.jsonl`` (when the run's question file is still readable),
``DIR/model_answer/<model>.jsonl`` per role and ``DIR/model_judgment/<judge>_single.jsonl`` and
``<judge>_pair.jsonl``, each row with FastChat's fields only. FastChat joins answers and judgments
by model name, which it takes from the answer *file name*; so every role gets one file-safe name
(the manifest's model name, ``[A-Za-z0-9._-]`` kept, the rest turned into ``_``; the role is
appended when two roles would share a name) used for the file and in every judgment row.

One row per key: FastChat's loaders keep the last row per game and ``show_result.py`` averages
every row, so a run's superseded and duplicate rows are left out. The row exported for a key is
its last ``ok`` row, else its last row as a failure in FastChat's own convention: ``score`` -1
for single rows, winner ``"error"`` for a failed pair game.

An existing file is never changed by default: a folder that already holds FastChat files is
refused before anything is written. ``mode="merge"`` keeps every existing row and appends only the
rows of the exported models that are not there yet (by question, by model and turn, by judge game),
so a rerun adds nothing; ``mode="force"`` replaces the files this export writes (and no other).
Every planned file is checked before the first one is written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from typing import Literal

from judge.errors import InputFileError, JudgeError, RunFolderError
from judge.schemas import Answer, PairJudgment, Record, SingleJudgment
from judge.store import Run, iter_jsonl_raw, read_jsonl, write_atomic

ExportMode = Literal["new", "merge", "force"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ExportSummary(Record):
    dir: str
    questions: int  # 0 when the run's question file could not be read
    models: dict[str, str]  # role -> FastChat model name
    answers: dict[str, int]  # role -> rows written
    single_rows: int
    single_failed: int  # written with score -1
    pair_rows: int
    pair_failed: int  # written with a game winner "error"
    files: list[str]
    notes: list[str]


def safe_name(name: str) -> str:
    """A FastChat model or judge name that is also a file name."""
    cleaned = _UNSAFE.sub("_", name).strip(".") or "model"
    return cleaned[:200]


def _model_names(run: Run, roles: list[str]) -> dict[str, str]:
    manifest = run.load_manifest()
    names: dict[str, str] = {}
    for role in roles:
        info = manifest.models.get(role) if manifest else None
        names[role] = safe_name(info.name if info else role)
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    return {r: (f"{n}-{r}" if counts[n] > 1 else n) for r, n in names.items()}


def _pick(rows: list, key_of, ok_of) -> list:
    """The last ok row of each key, else the key's last row; in order of first appearance."""
    chosen: dict[tuple, object] = {}
    for row in rows:
        key = key_of(row)
        prev = chosen.get(key)
        if prev is None or ok_of(row) or not ok_of(prev):
            chosen[key] = row
    return list(chosen.values())


def _lines(objs: list[dict]) -> str:
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs)


def _row_key(rel: str, row: dict) -> tuple:
    """What makes a row the same row again when merging into an existing file."""
    qid = str(row.get("question_id"))
    if rel == "question.jsonl":
        return (qid,)
    if rel.startswith("model_answer/"):
        return (qid, row.get("model_id"))
    if rel.endswith("_pair.jsonl"):
        return (qid, row.get("turn"), row.get("model_1"), row.get("model_2"), str(row.get("judge")))
    return (qid, row.get("turn"), row.get("model"), str(row.get("judge")))


def fastchat_files(out: Path) -> list[Path]:
    """The FastChat files already in ``out``: question.jsonl and model_answer/, model_judgment/ files."""
    found = [out / "question.jsonl"] if (out / "question.jsonl").exists() else []
    for sub in ("model_answer", "model_judgment"):
        if (out / sub).is_dir():
            found += sorted(p for p in (out / sub).iterdir() if p.suffix == ".jsonl")
    return found


def _plan_writes(out: Path, planned: dict[str, list[dict]], mode: ExportMode) -> dict[str, tuple[str, int]]:
    """The text of each file to write (and how many rows are new), after every check passed."""
    if out.exists() and not out.is_dir():
        raise JudgeError("is a file, not a folder: give a folder for the FastChat layout", path=out)
    existing = fastchat_files(out)
    if existing and mode == "new":
        raise JudgeError(f"the folder already holds FastChat files ({existing[0].relative_to(out)}"
                         f"{f' and {len(existing) - 1} more' if len(existing) > 1 else ''}); nothing "
                         "was written: pass --merge to add this run's models to them, --force to "
                         "replace the files this export writes, or give an empty folder", path=out)
    texts: dict[str, tuple[str, int]] = {}
    for rel, rows in planned.items():
        path = out / rel
        if path.is_dir():
            raise JudgeError("is a folder where the export writes a file; move it aside", path=path)
        if mode != "merge" or not path.exists():
            texts[rel] = (_lines(rows), len(rows))
            continue
        seen: set[tuple] = set()
        try:
            for _, obj in iter_jsonl_raw(path):
                seen.add(_row_key(rel, obj))
            old = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InputFileError("not valid UTF-8; --merge keeps every existing row, so fix or move "
                                 "the file first", path=path) from None
        except InputFileError as err:
            raise InputFileError(f"{err.message}; --merge keeps every existing row, so fix or move "
                                 "the file first", path=err.path, line=err.line) from None
        if old and not old.endswith("\n"):
            raise InputFileError("its last line has no newline (a torn write?); --merge keeps every "
                                 "existing row, so fix or move the file first", path=path)
        new = [r for r in rows if _row_key(rel, r) not in seen]
        if new:
            texts[rel] = (old + _lines(new), len(new))
    return texts


def export_fastchat(run: Run, out: Path, mode: ExportMode = "new") -> ExportSummary:
    """Write the run's questions, answers and judgments under ``out`` in FastChat's layout.

    ``mode``: "new" refuses a folder that already holds FastChat files; "merge" appends the
    exported models' rows that are missing from existing files; "force" replaces the files written.
    """
    if not run.root.is_dir():
        raise RunFolderError("run folder not found", path=run.root)
    planned: dict[str, list[dict]] = {}
    manifest = run.load_manifest()
    single = read_jsonl(run.single_path, SingleJudgment) if run.single_path.exists() else []
    pairs = read_jsonl(run.pairwise_path, PairJudgment) if run.pairwise_path.exists() else []
    by_model = {info.name: role for role, info in manifest.models.items()} if manifest else {}

    def role_of(model: str, role: str | None) -> str:
        return role or by_model.get(model) or model

    roles = sorted(set(run.answer_roles()) | {role_of(r.model, r.role) for r in single}
                   | {role_of(p.model_1, p.role_1) for p in pairs}
                   | {role_of(p.model_2, p.role_2) for p in pairs})
    names = _model_names(run, roles)
    notes: list[str] = []
    files: list[str] = []

    n_questions = 0
    qpath = Path(manifest.questions.path) if manifest and manifest.questions else None
    if qpath is not None and qpath.is_file():
        from judge.questions import load_questions

        try:
            _, qs = load_questions(qpath)
        except JudgeError as err:
            notes.append(f"question.jsonl not written: {err}")
        else:
            planned["question.jsonl"] = [q.model_dump(exclude_none=True) for q in qs]
            n_questions = len(qs)
    else:
        notes.append("question.jsonl not written: the run's question file is not available")

    answers: dict[str, int] = {}
    for role in run.answer_roles():
        by_q = {a.key: a for a in read_jsonl(run.answers_path(role), Answer)}
        rows = [{"question_id": a.question_id, "answer_id": a.answer_id, "model_id": names[role],
                 "choices": [c.model_dump() for c in a.choices], "tstamp": a.tstamp}
                for a in by_q.values()]
        rel = f"model_answer/{names[role]}.jsonl"
        planned[rel] = rows
        answers[role] = len(rows)

    single_out: dict[str, list[dict]] = {}
    n_single_failed = 0
    for r in _pick(single, lambda r: (r.judge[0], str(r.question_id), r.turn, role_of(r.model, r.role)),
                   lambda r: r.status == "ok"):
        ok = r.status == "ok"
        n_single_failed += not ok
        single_out.setdefault(r.judge[0], []).append({
            "question_id": r.question_id, "model": names[role_of(r.model, r.role)],
            "judge": list(r.judge), "user_prompt": r.user_prompt, "judgment": r.judgment,
            "score": r.score if ok else -1, "turn": r.turn, "tstamp": r.tstamp})
    pair_out: dict[str, list[dict]] = {}
    n_pair_failed = 0
    for p in _pick(pairs, lambda p: (p.judge[0], str(p.question_id), p.turn,
                                     role_of(p.model_1, p.role_1), role_of(p.model_2, p.role_2)),
                   lambda p: p.status == "ok"):
        g1, g2 = p.g1_winner, p.g2_winner
        if p.status != "ok":
            n_pair_failed += 1
            if p.games and len(p.games) == 2:
                g1 = "error" if p.games[0].status != "ok" else g1
                g2 = "error" if p.games[1].status != "ok" else g2
            if "error" not in (g1, g2):
                g1 = g2 = "error"
        pair_out.setdefault(p.judge[0], []).append({
            "question_id": p.question_id, "model_1": names[role_of(p.model_1, p.role_1)],
            "model_2": names[role_of(p.model_2, p.role_2)], "g1_winner": g1, "g2_winner": g2,
            "judge": list(p.judge), "g1_user_prompt": p.g1_user_prompt, "g1_judgment": p.g1_judgment,
            "g2_user_prompt": p.g2_user_prompt, "g2_judgment": p.g2_judgment, "turn": p.turn,
            "tstamp": p.tstamp})
    for judge, rows in single_out.items():
        planned[f"model_judgment/{safe_name(judge)}_single.jsonl"] = rows
    for judge, rows in pair_out.items():
        planned[f"model_judgment/{safe_name(judge)}_pair.jsonl"] = rows
    texts = _plan_writes(out, planned, mode)  # every check first: a refusal writes nothing
    folders = [out, out / "model_answer", out / "model_judgment"]
    existed = {d: d.exists() for d in folders}
    try:
        for rel, (text, _) in texts.items():
            write_atomic(out / rel, text)
            files.append(rel)
    except BaseException:  # a full disk, a signal: take back the folders this call made empty
        for d in reversed(folders):
            if not existed[d]:
                try:
                    d.rmdir()
                except OSError:
                    pass
        raise
    if mode == "merge":
        kept = len(planned) - len(texts)
        appended = sum(n for _, n in texts.values())
        notes.append(f"merged: {appended} rows appended to {len(texts)} files, {kept} files "
                     "already held every row")
    dropped = len(single) + len(pairs) - sum(map(len, single_out.values())) - sum(map(len, pair_out.values()))
    if dropped:
        notes.append(f"{dropped} superseded or duplicate judgment rows left out (one row per key)")
    return ExportSummary(dir=str(out), questions=n_questions, models=names, answers=answers,
                         single_rows=sum(map(len, single_out.values())), single_failed=n_single_failed,
                         pair_rows=sum(map(len, pair_out.values())), pair_failed=n_pair_failed,
                         files=files, notes=notes)
