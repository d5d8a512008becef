"""`export-fastchat` never changes an existing file unless asked: refuse, --merge, --force.

The tree is a FastChat folder with two models of ours (``base``, ``comp``) and one of someone
else (``other``); the run is imported from it and exported back into it, the case that once
rewrote the judgment file and lost the other model's rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge.cli import main
from judge.errors import JudgeError
from judge.interop import export_fastchat, import_fastchat
from judge.store import Run


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _single(qid: int, model: str, turn: int, score: float) -> dict:
    return {"question_id": qid, "model": model, "judge": ["gpt-4", "single-v1"],
            "user_prompt": f"grade {qid}/{turn}", "judgment": f"ok [[{score}]]", "score": score,
            "turn": turn, "tstamp": 1.0}


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    d = tmp_path / "mt_bench"
    _write(d / "question.jsonl", [{"question_id": q, "category": "writing", "turns": [f"Q{q}?"]}
                                  for q in (1, 2)])
    for model in ("base", "comp", "other"):
        _write(d / "model_answer" / f"{model}.jsonl", [
            {"question_id": q, "answer_id": f"{model}{q}", "model_id": model,
             "choices": [{"index": 0, "turns": [f"{model} says {q}"]}], "tstamp": 1.0} for q in (1, 2)])
    _write(d / "model_judgment" / "gpt-4_single.jsonl",
           [_single(q, m, 1, s) for q, m, s in [(1, "base", 8), (2, "base", 6), (1, "comp", 5),
                                                (1, "other", 9), (2, "other", 3)]])
    return d


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def run(tree: Path, tmp_path: Path) -> Run:
    r = Run(tmp_path / "run")
    import_fastchat(tree, "base", "comp", r)
    return r


def test_an_existing_fastchat_folder_is_refused_and_unchanged(tree: Path, run: Run) -> None:
    before = snapshot(tree)
    with pytest.raises(JudgeError, match="already holds FastChat files.*--merge.*--force"):
        export_fastchat(run, tree)
    assert snapshot(tree) == before


def test_merge_keeps_every_row_appends_the_missing_ones_and_a_rerun_adds_nothing(tree: Path, run: Run) -> None:
    before = snapshot(tree)
    s = export_fastchat(run, tree, mode="merge")
    after = snapshot(tree)
    for rel, data in before.items():  # every existing byte is still there, as a prefix
        assert after[rel].startswith(data), rel
    single = [json.loads(x) for x in after["model_judgment/gpt-4_single.jsonl"].decode().splitlines()]
    keys = [(r["question_id"], r["model"]) for r in single]
    # the imported run holds base 1, base 2, comp 1: all already there, so nothing is appended
    assert keys == [(1, "base"), (2, "base"), (1, "comp"), (1, "other"), (2, "other")]
    assert after == before and s.single_rows == 3
    assert export_fastchat(run, tree, mode="merge") and snapshot(tree) == before


def test_merge_appends_rows_of_the_exported_models_only(tree: Path, run: Run) -> None:
    lines = (tree / "model_judgment" / "gpt-4_single.jsonl").read_text().splitlines()
    kept = [ln for ln in lines if '"model": "comp"' not in ln]  # the folder lacks comp's grade
    (tree / "model_judgment" / "gpt-4_single.jsonl").write_text("\n".join(kept) + "\n")
    before = snapshot(tree)
    export_fastchat(run, tree, mode="merge")
    text = (tree / "model_judgment" / "gpt-4_single.jsonl").read_bytes()
    assert text.startswith(before["model_judgment/gpt-4_single.jsonl"])
    added = [json.loads(x) for x in text[len(before["model_judgment/gpt-4_single.jsonl"]):].decode().splitlines()]
    assert [(r["question_id"], r["model"], r["score"]) for r in added] == [(1, "comp", 5)]
    again = snapshot(tree)
    export_fastchat(run, tree, mode="merge")  # deduplicated: the rerun appends nothing
    assert snapshot(tree) == again


def test_force_replaces_only_the_files_it_writes(tree: Path, run: Run) -> None:
    other = (tree / "model_answer" / "other.jsonl").read_bytes()
    s = export_fastchat(run, tree, mode="force")
    assert (tree / "model_answer" / "other.jsonl").read_bytes() == other
    assert "model_judgment/gpt-4_single.jsonl" in s.files


def test_cli_refusal_is_one_line_and_merge_with_force_is_refused(tree: Path, run: Run,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(tree)
    for extra in ([], ["--merge", "--force"]):
        with pytest.raises(SystemExit) as exc:
            main(["export-fastchat", str(run.root), str(tree), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("judge: error: "), err
    assert snapshot(tree) == before


def test_merge_refuses_a_broken_existing_file_before_writing_anything(tree: Path, run: Run) -> None:
    with open(tree / "model_judgment" / "gpt-4_single.jsonl", "a") as fh:
        fh.write("{not json\n")
    (tree / "model_answer" / "comp.jsonl").unlink()  # would be written if the check came late
    before = snapshot(tree)
    with pytest.raises(JudgeError, match=r"gpt-4_single.jsonl:6: not valid JSON"):
        export_fastchat(run, tree, mode="merge")
    assert snapshot(tree) == before


def test_a_half_finished_import_does_not_block_its_own_retry(tree: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import judge.interop.fastchat_import as fi

    real = fi._write_jsonl
    calls = {"n": 0}

    def disk_full_on_second_file(path: Path, rows: list) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, rows)

    run = Run(tmp_path / "half")
    monkeypatch.setattr(fi, "_write_jsonl", disk_full_on_second_file)
    with pytest.raises(OSError):
        import_fastchat(tree, "base", "comp", run)
    assert run.answers_path("baseline").exists()  # half-finished: one file written, then the failure
    monkeypatch.setattr(fi, "_write_jsonl", real)
    s = import_fastchat(tree, "base", "comp", run)  # the retry redoes it
    assert [r.answers for r in s.roles] == [2, 2]
    assert run.load_manifest().stages["import"].finished is not None
    with pytest.raises(JudgeError, match="already holds a run"):  # a finished import is kept
        import_fastchat(tree, "base", "comp", run)
