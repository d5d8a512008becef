"""FastChat interop: import a FastChat MT-Bench tree into a run folder, export a run to FastChat.

**Import** (`import_fastchat`) reads a ``data/mt_bench``-style tree — ``question.jsonl``,
``reference_answer/``, ``model_answer/<model>.jsonl`` and ``model_judgment/*.jsonl`` (single and
pairwise rows, told apart by their fields) — for two models, and writes a run folder that
``judge report`` and ``judge review`` read: ``answers/{baseline,compressed}.jsonl`` (engine
``"import"``), ``judgments/single.jsonl``, ``judgments/pairwise.jsonl`` and the manifest.
FastChat names a model by its answer *file name*, so imported answers take that name as
``model_id`` (some files carry another ``model_id`` inside).

Failures are kept and counted, never averaged in:
  * a row with ``score == -1`` (FastChat's "no [[rating]] found") or the judgment ``$ERROR$``
    (FastChat's API failure), and a pair game whose winner is ``error``, gets status
    ``imported_error`` (and score -1);
  * several rows for one key — (judge model, question, model, turn) for single rows, (judge model,
    question, turn) for pair rows — are re-runs. **The last valid row of a key wins** (a re-run
    replaces an earlier grade or failure; a later failure never erases an earlier grade); when no
    row of a key is valid, its last row stands as the failure. Every other valid row gets status
    ``duplicate`` (its score is kept in ``error``). The winning row of a key is written after the
    key's other rows, so readers that take the last row per key (the scorecard) agree.

FastChat's ``show_result.py`` does not de-duplicate: it drops ``score == -1`` and averages every
other row. `fastchat_mean` reproduces that number for comparison; on a file without duplicates it
equals judge's mean over ``ok`` rows exactly.

Pair rows are oriented so that ``model_1`` is the baseline: a row whose ``model_1`` is the
compressed model is swapped (games 1 and 2 trade places, winners are mapped), as FastChat's own
``normalize_game_key_single`` does. The export side lives in `judge.interop.fastchat_export`.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from judge.errors import InputFileError, RunFolderError
from judge.questions import load_questions
from judge.schemas import (
    Answer,
    ModelInfo,
    PairGame,
    PairJudgment,
    Question,
    QuestionSetInfo,
    Record,
    SingleJudgment,
)
from judge.store import Run, describe_validation_error, iter_jsonl_raw, package_versions, write_atomic

FASTCHAT_ERROR = "$ERROR$"  # fastchat.llm_judge.common.API_ERROR_OUTPUT
ROLES: tuple[str, str] = ("baseline", "compressed")


class RoleImport(Record):
    """What was imported for one role, and the two means (judge's and FastChat's rule)."""

    role: str
    model: str
    answers: int
    single_rows: int
    single_ok: int
    single_imported_error: int  # rows with score -1 / $ERROR$ (kept, never averaged)
    single_duplicate: int  # valid rows superseded by a later valid row for the same key
    mean_score: float | None  # judge: mean over ok rows (one per key)
    fastchat_mean: float | None  # FastChat show_result: mean over rows with score != -1


class ImportSummary(Record):
    run: str
    judge_model: str | None
    questions: str
    roles: list[RoleImport]
    pair_rows: int
    pair_ok: int
    pair_imported_error: int
    pair_duplicate: int
    pair_swapped: int  # rows whose model_1 was the compressed model
    ignored_rows: int  # judgment rows about other models
    notes: list[str]


# --------------------------------------------------------------------------- reading files


def _rows(path: Path) -> list[tuple[int, dict]]:
    try:
        return list(iter_jsonl_raw(path))
    except OSError as err:
        raise InputFileError(f"cannot read file ({err.strerror})", path=path) from None


def _kind(path: Path, rows: list[tuple[int, dict]]) -> Literal["single", "pair"]:
    """A judgment file holds single rows (``model``) or pair rows (``model_1``), not both."""
    kinds: set[str] = set()
    for lineno, obj in rows:
        if "model_1" in obj:
            kinds.add("pair")
        elif "model" in obj:
            kinds.add("single")
        else:
            raise InputFileError("not a FastChat judgment row (no 'model' or 'model_1' field)",
                                 path=path, line=lineno)
    if len(kinds) > 1:
        raise InputFileError("file mixes single ('model') and pairwise ('model_1') rows; split it",
                             path=path)
    return "pair" if "pair" in kinds else "single"


def fastchat_mean(rows: list[dict], model: str) -> float | None:
    """FastChat ``show_result.py --mode single``: drop ``score == -1``, average the rest (no dedup)."""
    scores = [float(r["score"]) for r in rows if r.get("model") == model and r.get("score") != -1]
    return sum(scores) / len(scores) if scores else None


def _failed_single(obj: dict) -> str | None:
    if obj.get("judgment") == FASTCHAT_ERROR:
        return "FastChat judge API error ($ERROR$)"
    if obj.get("score") == -1:
        return "FastChat found no [[rating]] in the judgment (score -1)"
    return None


def _pair_turn(obj: dict) -> int:
    if isinstance(obj.get("turn"), int):
        return obj["turn"]
    judge = obj.get("judge") or ["", ""]
    return 2 if str(judge[-1]).endswith("multi-turn") else 1


def _choose(keys: list[tuple], valid: list[bool]) -> list[bool]:
    """Per row: does it win its key? The last valid row of a key, else the key's last row."""
    last_valid: dict[tuple, int] = {}
    last_any: dict[tuple, int] = {}
    for i, (k, ok) in enumerate(zip(keys, valid)):
        last_any[k] = i
        if ok:
            last_valid[k] = i
    winners = {last_valid.get(k, last_any[k]) for k in last_any}
    return [i in winners for i in range(len(keys))]


def _winners_last(rows: list, wins: list[bool]) -> list:
    """Rows of each key with the key's winner after the others (file order otherwise kept)."""
    return [r for r, w in zip(rows, wins) if not w] + [r for r, w in zip(rows, wins) if w]


# --------------------------------------------------------------------------- single judgments


def _import_single(files: list[tuple[Path, list[tuple[int, dict]]]], names: dict[str, str],
                   qids: set[str]) -> tuple[list[SingleJudgment], Counter]:
    raw: list[tuple[Path, int, dict]] = [(p, n, obj) for p, rows in files for n, obj in rows
                                         if obj.get("model") in names]
    keys = [(tuple(o.get("judge") or ()), str(o.get("question_id")), o.get("model"), o.get("turn"))
            for _, _, o in raw]
    valid = [_failed_single(o) is None for _, _, o in raw]
    wins = _choose(keys, valid)
    out: list[SingleJudgment] = []
    counts: Counter = Counter()
    for (path, lineno, obj), ok, win in zip(raw, valid, wins):
        role = names[obj["model"]]
        _check_qid(obj, qids, path, lineno)
        error = _failed_single(obj)
        status = "ok" if ok and win else "imported_error" if not ok else "duplicate"
        if status == "duplicate":
            error = f"superseded by a later row for the same key (score {obj.get('score')})"
        data = {**obj, "role": role, "status": status, "error": error}
        if status != "ok":
            data["score"] = -1
        try:
            out.append(SingleJudgment.model_validate(data))
        except ValidationError as err:
            raise InputFileError(f"invalid FastChat single judgment: {describe_validation_error(err)}",
                                 path=path, line=lineno) from None
        counts[(role, status)] += 1
    return _winners_last(out, wins), counts


def _check_qid(obj: dict, qids: set[str], path: Path, lineno: int) -> None:
    if str(obj.get("question_id")) not in qids:
        raise InputFileError(f"question_id {obj.get('question_id')!r} is not in the question set; "
                             "pass the questions these files were made with (--questions)",
                             path=path, line=lineno)


# --------------------------------------------------------------------------- pair judgments

_SWAP = {"model_1": "model_2", "model_2": "model_1"}


def _game(a_role: str, b_role: str, prompt: str, judgment: str, winner: str) -> PairGame:
    model_role = {"model_1": "baseline", "model_2": "compressed", "tie": "tie"}
    if winner == "error" or winner not in model_role:
        why = "FastChat judge API error ($ERROR$)" if judgment == FASTCHAT_ERROR else \
            f"FastChat winner {winner!r} (no [[A]]/[[B]]/[[C]] verdict)"
        return PairGame(a_role=a_role, b_role=b_role, user_prompt=prompt, judgment=judgment,
                        status="imported_error", error=why)
    return PairGame(a_role=a_role, b_role=b_role, user_prompt=prompt, judgment=judgment, status="ok",
                    winner=model_role[winner])  # type: ignore[arg-type]


def _pair_row(obj: dict, names: dict[str, str]) -> tuple[dict, bool]:
    """The row oriented baseline-first, with its games; and whether it was swapped."""
    swap = names[obj["model_1"]] == "compressed"
    if swap:
        obj = {**obj, "model_1": obj["model_2"], "model_2": obj["model_1"],
               "g1_winner": _SWAP.get(obj["g2_winner"], obj["g2_winner"]),
               "g2_winner": _SWAP.get(obj["g1_winner"], obj["g1_winner"]),
               "g1_user_prompt": obj["g2_user_prompt"], "g2_user_prompt": obj["g1_user_prompt"],
               "g1_judgment": obj["g2_judgment"], "g2_judgment": obj["g1_judgment"]}
    games = [_game("baseline", "compressed", obj["g1_user_prompt"], obj["g1_judgment"], obj["g1_winner"]),
             _game("compressed", "baseline", obj["g2_user_prompt"], obj["g2_judgment"], obj["g2_winner"])]
    both_ok = all(g.status == "ok" for g in games)
    consistent = games[0].winner == games[1].winner if both_ok else None
    winner = (games[0].winner if consistent else "tie") if both_ok else None
    row = {**obj, "turn": _pair_turn(obj), "role_1": "baseline", "role_2": "compressed",
           "games": games, "status": "ok" if both_ok else "imported_error", "winner": winner,
           "consistent": consistent}
    return row, swap


def _import_pair(files: list[tuple[Path, list[tuple[int, dict]]]], names: dict[str, str],
                 qids: set[str]) -> tuple[list[PairJudgment], Counter]:
    wanted = set(names)
    raw = [(p, n, o) for p, rows in files for n, o in rows
           if {o.get("model_1"), o.get("model_2")} == wanted]
    out: list[PairJudgment] = []
    counts: Counter = Counter()
    oriented: list[tuple[Path, int, dict]] = []
    for path, lineno, obj in raw:
        _check_qid(obj, qids, path, lineno)
        try:
            row, swapped = _pair_row(obj, names)
        except KeyError as err:
            raise InputFileError(f"FastChat pair judgment lacks field {err}", path=path, line=lineno) from None
        counts["swapped"] += swapped
        oriented.append((path, lineno, row))
    keys = [(tuple(r.get("judge") or ()), str(r["question_id"]), r["turn"]) for _, _, r in oriented]
    valid = [r["status"] == "ok" for _, _, r in oriented]
    wins = _choose(keys, valid)
    for (path, lineno, row), ok, win in zip(oriented, valid, wins):
        if ok and not win:
            row = {**row, "status": "duplicate", "winner": None}
        try:
            out.append(PairJudgment.model_validate(row))
        except ValidationError as err:
            raise InputFileError(f"invalid FastChat pair judgment: {describe_validation_error(err)}",
                                 path=path, line=lineno) from None
        counts[row["status"]] += 1
    return _winners_last(out, wins), counts


# --------------------------------------------------------------------------- answers


def _import_answers(path: Path, name: str, role: str, questions: dict[str, Question]
                    ) -> tuple[list[Answer], int]:
    """One Answer per question (the last row of a question wins, as in FastChat's loader)."""
    by_q: dict[str, Answer] = {}
    dupes = 0
    for lineno, obj in _rows(path):
        try:
            ans = Answer.model_validate(obj)
        except ValidationError as err:
            raise InputFileError(f"invalid FastChat answer: {describe_validation_error(err)}",
                                 path=path, line=lineno) from None
        _check_qid(obj, set(questions), path, lineno)
        dupes += ans.key in by_q
        by_q[ans.key] = ans.model_copy(update={
            "model_id": name, "role": role, "category": questions[ans.key].category, "engine": "import"})
    return list(by_q.values()), dupes


# --------------------------------------------------------------------------- the import


def _questions(data_dir: Path, questions: str | Path | None) -> tuple[QuestionSetInfo, list[Question]]:
    if questions is None:
        if not (data_dir / "question.jsonl").is_file():
            raise InputFileError("no question.jsonl in the FastChat folder; pass --questions PATH "
                                 "(FastChat's data/mt_bench folder or its question.jsonl)", path=data_dir)
        return load_questions(data_dir)
    p = Path(questions)
    if p.is_file() and p.name == "question.jsonl" and (p.parent / "reference_answer").is_dir():
        return load_questions(p.parent)  # take FastChat's reference answers along
    return load_questions(p)


def _judgment_files(data_dir: Path, judge_files: list[Path] | None) -> list[Path]:
    if judge_files:
        for p in judge_files:
            if not p.is_file():
                raise InputFileError("judgment file not found", path=p)
        return list(judge_files)
    d = data_dir / "model_judgment"
    found = sorted(d.glob("*_single.jsonl")) + sorted(d.glob("*_pair.jsonl")) if d.is_dir() else []
    return found


def import_fastchat(data_dir: Path, baseline: str, compressed: str, run: Run, *,
                    judge_files: list[Path] | None = None,
                    questions: str | Path | None = None) -> ImportSummary:
    """Build a run folder from a FastChat MT-Bench tree (see the module docstring)."""
    if baseline == compressed:
        raise InputFileError(f"--baseline and --compressed are both {baseline!r}; name two models")
    retry = _unfinished_import(run)
    if not retry and (run.manifest_path.exists() or run.answer_roles() or run.single_path.exists()
                      or run.pairwise_path.exists()):
        raise RunFolderError("run folder already holds a run; choose another --run or remove it",
                             path=run.root)
    if not data_dir.is_dir():
        raise InputFileError("FastChat data folder not found", path=data_dir)
    info, qs = _questions(data_dir, questions)
    by_id = {q.key: q for q in qs}
    names = {baseline: "baseline", compressed: "compressed"}
    notes: list[str] = []

    files = [(p, _rows(p)) for p in _judgment_files(data_dir, judge_files)]
    single_files = [(p, rows) for p, rows in files if rows and _kind(p, rows) == "single"]
    pair_files = [(p, rows) for p, rows in files if rows and _kind(p, rows) == "pair"]
    single, s_counts = _import_single(single_files, names, set(by_id))
    pairs, p_counts = _import_pair(pair_files, names, set(by_id))
    judges = sorted({r.judge[0] for r in single} | {r.judge[0] for r in pairs})
    if len(judges) > 1:
        raise InputFileError(f"judgments come from several judge models ({', '.join(judges)}); "
                             "give one model's files with --judge-file")
    for model, role in names.items():
        if not any(r.model == model for r in single) and not any(pairs):
            others = sorted(p.name for p in (data_dir / "model_judgment").glob("*.jsonl")) \
                if (data_dir / "model_judgment").is_dir() else []
            hint = f"; model_judgment/ has {', '.join(others)}: choose with --judge-file" if others else \
                "; give the judgment file with --judge-file"
            raise InputFileError(f"no judgments of {role} model {model!r} in "
                                 f"{', '.join(str(p) for p, _ in files) or 'model_judgment/'}{hint}")

    roles: list[RoleImport] = []
    answers: dict[str, list[Answer]] = {}
    for model, role in names.items():
        apath = data_dir / "model_answer" / f"{model}.jsonl"
        if apath.is_file():
            answers[role], dupes = _import_answers(apath, model, role, by_id)
            if dupes:
                notes.append(f"{apath.name}: {dupes} repeated answer rows (the last one kept)")
            missing = len(by_id) - len(answers[role])
            if missing:
                notes.append(f"{role} {model!r} has no answer to {missing} of {len(by_id)} questions")
        else:
            notes.append(f"no answer file for {role} {model!r} ({apath}); judgments imported without answers")
        ok = [r.score for r in single if r.model == model and r.status == "ok"]
        roles.append(RoleImport(
            role=role, model=model, answers=len(answers.get(role, [])),
            single_rows=sum(n for (r, _), n in s_counts.items() if r == role),
            single_ok=s_counts[(role, "ok")], single_imported_error=s_counts[(role, "imported_error")],
            single_duplicate=s_counts[(role, "duplicate")],
            mean_score=sum(ok) / len(ok) if ok else None,
            fastchat_mean=fastchat_mean([o for _, rows in single_files for _, o in rows], model)))
    n_rows = sum(len(rows) for _, rows in files)
    ignored = n_rows - len(single) - len(pairs)

    # every input accepted: mark the import as started, so that if it stops half-way (Ctrl-C, a
    # full disk) its own retry may redo it; then the files; the manifest is finished last
    source = {"source": "fastchat", "data_dir": str(data_dir),
              "judgment_files": [str(p) for p, _ in files]}
    run.update_manifest(config={"import": source},
                        stages={"import": {"started": time.time(), "finished": None}})
    if retry:  # files of the interrupted attempt that this one does not write again
        stale = [run.answers_path(r) for r in run.answer_roles() if r not in answers]
        stale += [p for p, rows in ((run.single_path, single), (run.pairwise_path, pairs)) if not rows]
        for path in stale:
            path.unlink(missing_ok=True)
    for role, rows in answers.items():
        _write_jsonl(run.answers_path(role), rows)
    if single:
        _write_jsonl(run.single_path, single)
    if pairs:
        _write_jsonl(run.pairwise_path, pairs)
    now = time.time()
    run.update_manifest(
        questions=info, versions=package_versions(),
        models={role: ModelInfo(spec=f"fastchat:{model}", name=model,
                                path=str(data_dir / "model_answer" / f"{model}.jsonl"))
                for model, role in names.items()},
        config={"judge": {"model": judges[0] if judges else None},
                "import": {"source": "fastchat", "data_dir": str(data_dir),
                           "judgment_files": [str(p) for p, _ in files]}},
        stages={"import": {"started": now, "finished": now}})
    return ImportSummary(
        run=str(run.root), judge_model=judges[0] if judges else None, questions=info.name, roles=roles,
        pair_rows=len(pairs), pair_ok=p_counts["ok"], pair_imported_error=p_counts["imported_error"],
        pair_duplicate=p_counts["duplicate"], pair_swapped=p_counts["swapped"], ignored_rows=ignored,
        notes=notes)


def _unfinished_import(run: Run) -> bool:
    """Whether ``run`` holds an import that started and never finished (its retry may redo it)."""
    if not run.manifest_path.exists():
        return False
    manifest = run.load_manifest()
    stage = manifest.stages.get("import") if manifest else None
    return bool(manifest and "import" in manifest.config and stage is not None
                and stage.started is not None and stage.finished is None)


def _write_jsonl(path: Path, rows: list) -> None:
    """Write a whole file at once: an import is all or nothing."""
    write_atomic(path, "".join(r.model_dump_json() + "\n" for r in rows))
