"""FastChat interop: import a FastChat MT-Bench tree into a run, export a run back to FastChat.

Hand-made trees pin the status rules (duplicates, -1 scores, $ERROR$, error winners, reorientation).
The real FastChat files in ../shared/mtbench_data are checked against FastChat's own code: fschat's
``show_result`` functions and ``llm_judge.common`` loaders. They are absent from a user's clone:
the same checks run everywhere on the small tree in tests/data/fastchat
(tests/interop/test_fastchat_fixture.py); these are the extra on real data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge.cli import main
from judge.errors import InputFileError, RunFolderError
from judge.interop.fastchat_import import fastchat_mean, import_fastchat
from judge.interop.fastchat_export import export_fastchat, safe_name
from judge.schemas import Answer, PairJudgment, SingleJudgment
from judge.store import Run, read_jsonl
from fastchat_support import judge_means as _judge_means
from fastchat_support import show_pairwise as _show_pairwise
from fastchat_support import show_single as _show_single

GRIFFIN_BASE = "Meta-Llama-3-8B-Instruct-Normal"
GRIFFIN_COMP = "Meta-Llama-3-8B-Instruct-Griffin"
MEDUSA = "medusa-vicuna-7b-v1.3-1-temperature-0.0-posterior_threshold-0.09-posterior_alpha-0.3"


# --------------------------------------------------------------------------- a hand-made tree


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _single(qid: int, model: str, turn: int, score: float, judgment: str | None = None, t: float = 0.0) -> dict:
    return {"question_id": qid, "model": model, "judge": ["gpt-4", "single-v1" if turn == 1 else "single-v1-multi-turn"],
            "user_prompt": f"grade {qid}/{turn}", "judgment": judgment or f"fine [[{score}]]",
            "score": score, "turn": turn, "tstamp": t}


def _pair(qid: int, m1: str, m2: str, g1: str, g2: str, t: float = 0.0) -> dict:
    return {"question_id": qid, "model_1": m1, "model_2": m2, "g1_winner": g1, "g2_winner": g2,
            "judge": ["gpt-4", "pair-v2"], "g1_user_prompt": f"A={m1}", "g1_judgment": f"g1 says {g1}",
            "g2_user_prompt": f"A={m2}", "g2_judgment": "$ERROR$" if g2 == "error" else f"g2 says {g2}",
            "turn": 1, "tstamp": t}


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """Two questions, models ``base`` and ``comp`` (plus ``other``), single and pair judgments."""
    d = tmp_path / "mt_bench"
    _write(d / "question.jsonl", [
        {"question_id": 1, "category": "writing", "turns": ["Say hi.", "Say bye."]},
        {"question_id": 2, "category": "math", "turns": ["1+1?", "Times 3?"], "reference": ["2", "6"]},
    ])
    for model in ("base", "comp"):
        _write(d / "model_answer" / f"{model}.jsonl", [
            {"question_id": q, "answer_id": f"{model}{q}", "model_id": f"org/{model}",
             "choices": [{"index": 0, "turns": [f"{model} a{q}", f"{model} b{q}"]}], "tstamp": 1.0}
            for q in (1, 2)])
    _write(d / "model_judgment" / "gpt-4_single.jsonl", [
        _single(1, "base", 1, 8, t=1),
        _single(1, "base", 1, -1, judgment="$ERROR$", t=2),  # later failure: must not erase the 8
        _single(1, "base", 2, 6, t=3),
        _single(2, "base", 1, 4, t=4),
        _single(2, "base", 1, 5, t=5),  # re-run: the 5 wins, the 4 is a duplicate
        _single(2, "base", 2, -1, judgment="no rating here", t=6),  # the only row: a failure
        _single(1, "comp", 1, 7, t=7),
        _single(1, "comp", 2, 3, t=8),
        _single(2, "comp", 1, 2, t=9),
        _single(2, "comp", 2, 9, t=10),
        _single(1, "other", 1, 10, t=11),
    ])
    # model_1 is the compressed model: rows must be turned baseline-first
    _write(d / "model_judgment" / "gpt-4_pair.jsonl", [
        _pair(1, "comp", "base", "model_1", "model_1", t=1),  # comp wins both orders
        _pair(2, "comp", "base", "model_2", "error", t=2),  # a failed game
        _pair(2, "comp", "base", "model_1", "model_2", t=3),  # re-run: inconsistent -> tie
    ])
    return d


def test_import_statuses_and_means(tree: Path, tmp_path: Path) -> None:
    run = Run(tmp_path / "run")
    s = import_fastchat(tree, "base", "comp", run)
    base, comp = s.roles
    # base: 6 rows; keys (1,1): 8 ok + $ERROR$; (1,2): 6; (2,1): 4 dup + 5 ok; (2,2): -1 only
    assert (base.single_rows, base.single_ok, base.single_imported_error, base.single_duplicate) == (6, 3, 2, 1)
    assert base.mean_score == pytest.approx((8 + 6 + 5) / 3)
    assert base.fastchat_mean == pytest.approx((8 + 6 + 4 + 5) / 4)  # FastChat keeps the duplicate 4
    assert (comp.single_ok, comp.mean_score, comp.fastchat_mean) == (4, pytest.approx(21 / 4), pytest.approx(21 / 4))
    assert s.ignored_rows == 1 and s.judge_model == "gpt-4"

    rows = read_jsonl(run.single_path, SingleJudgment)
    assert len(rows) == 10
    by_t = {r.tstamp: r for r in rows}
    assert by_t[2].status == "imported_error" and by_t[2].score == -1 and "$ERROR$" in (by_t[2].error or "")
    assert by_t[4].status == "duplicate" and by_t[4].score == -1 and "score 4" in (by_t[4].error or "")
    assert by_t[6].status == "imported_error" and by_t[6].judgment == "no rating here"
    assert {r.role for r in rows if r.model == "base"} == {"baseline"}
    # the winner of each key comes after the key's other rows (readers take the last row per key)
    last = {}
    for r in rows:
        last[(r.question_id, r.model, r.turn)] = r
    assert {k: (v.status, v.score) for k, v in last.items() if k[1] == "base"} == {
        (1, "base", 1): ("ok", 8), (1, "base", 2): ("ok", 6), (2, "base", 1): ("ok", 5),
        (2, "base", 2): ("imported_error", -1)}

    answers = read_jsonl(run.answers_path("baseline"), Answer)
    assert [a.model_id for a in answers] == ["base", "base"]  # FastChat's name is the file name
    assert {a.engine for a in answers} == {"import"} and answers[1].category == "math"
    manifest = run.load_manifest()
    assert manifest.models["compressed"].spec == "fastchat:comp"
    assert manifest.models["compressed"].fingerprint is None
    assert manifest.config["judge"] == {"model": "gpt-4"}
    assert manifest.questions.n_questions == 2


def test_import_pairs_reoriented_baseline_first(tree: Path, tmp_path: Path) -> None:
    run = Run(tmp_path / "run")
    s = import_fastchat(tree, "base", "comp", run)
    assert (s.pair_rows, s.pair_ok, s.pair_imported_error, s.pair_duplicate, s.pair_swapped) == (3, 2, 1, 0, 3)
    rows = read_jsonl(run.pairwise_path, PairJudgment)
    assert all(r.model_1 == "base" and r.role_1 == "baseline" and r.role_2 == "compressed" for r in rows)
    by_t = {r.tstamp: r for r in rows}
    # comp (model_1 in the file) won both games -> model_2 after the swap, winner "compressed"
    q1 = by_t[1]
    assert (q1.g1_winner, q1.g2_winner, q1.winner, q1.consistent) == ("model_2", "model_2", "compressed", True)
    # the file's game 2 (base shown first) is judge's game 1
    assert q1.g1_user_prompt == "A=base" and q1.games[0].a_role == "baseline"
    failed = by_t[2]
    assert failed.status == "imported_error" and failed.winner is None
    assert failed.g1_winner == "error" and failed.games[0].status == "imported_error"
    assert failed.games[1].status == "ok" and failed.games[1].winner == "baseline"
    tie = by_t[3]
    assert (tie.status, tie.winner, tie.consistent) == ("ok", "tie", False)
    assert rows[-1].tstamp == 3  # the key's winner is written last


def test_import_refuses_bad_input(tree: Path, tmp_path: Path) -> None:
    run = Run(tmp_path / "run")
    import_fastchat(tree, "base", "comp", run)
    with pytest.raises(RunFolderError, match="already holds a run"):
        import_fastchat(tree, "base", "comp", run)
    bare = tmp_path / "bare"
    (bare / "model_judgment").mkdir(parents=True)
    with pytest.raises(InputFileError, match="--questions"):
        import_fastchat(bare, "base", "comp", Run(tmp_path / "r2"))
    bad = _write(tmp_path / "bad.jsonl", [_single(99, "base", 1, 5), _single(1, "comp", 1, 5)])
    with pytest.raises(InputFileError, match=r"bad\.jsonl:1: question_id 99"):
        import_fastchat(tree, "base", "comp", Run(tmp_path / "r3"), judge_files=[bad])
    mixed = _write(tmp_path / "mixed.jsonl", [_single(1, "base", 1, 5), _pair(1, "base", "comp", "tie", "tie")])
    with pytest.raises(InputFileError, match="mixes single"):
        import_fastchat(tree, "base", "comp", Run(tmp_path / "r4"), judge_files=[mixed])
    two = _write(tmp_path / "two.jsonl", [_single(1, "base", 1, 5),
                                          {**_single(1, "comp", 1, 5), "judge": ["gpt-3.5", "single-v1"]}])
    with pytest.raises(InputFileError, match="several judge models"):
        import_fastchat(tree, "base", "comp", Run(tmp_path / "r5"), judge_files=[two])
    with pytest.raises(InputFileError, match="no judgments of compressed model 'nobody'"):
        import_fastchat(tree, "base", "nobody", Run(tmp_path / "r6"),
                        judge_files=[tree / "model_judgment" / "gpt-4_single.jsonl"])


def test_cli_import_prints_counts_and_errors_exit_2(tree: Path, tmp_path: Path, capsys) -> None:
    main(["import-fastchat", str(tree), "--baseline", "base", "--compressed", "comp",
          "--run", str(tmp_path / "cli-run"), "--no-report"])
    out = capsys.readouterr().out
    assert "6 rows = 3 ok + 2 errors + 1 duplicates; mean 6.3333 (FastChat show_result: 5.7500)" in out
    assert "pairwise: 3 rows = 2 ok + 1 errors + 0 duplicates (3 reoriented baseline-first)" in out
    with pytest.raises(SystemExit) as exc:
        main(["import-fastchat", str(tmp_path), "--baseline", "base", "--compressed", "comp",
              "--run", str(tmp_path / "cli-run2")])
    assert exc.value.code == 2
    assert "--questions" in capsys.readouterr().err


# --------------------------------------------------------------------------- export, hand-made


def test_export_one_row_per_key_in_fastchat_convention(tree: Path, tmp_path: Path) -> None:
    from fastchat.llm_judge.common import (
        load_model_answers, load_pairwise_model_judgments, load_single_model_judgments,
    )

    run = Run(tmp_path / "run")
    import_fastchat(tree, "base", "comp", run)
    out = tmp_path / "export"
    s = export_fastchat(run, out)
    assert s.models == {"baseline": "base", "compressed": "comp"}
    assert (s.single_rows, s.single_failed, s.pair_rows, s.pair_failed) == (8, 1, 2, 0)
    single = [json.loads(x) for x in (out / "model_judgment" / "gpt-4_single.jsonl").read_text().splitlines()]
    got = {(r["question_id"], r["model"], r["turn"]): r["score"] for r in single}
    assert got == {(1, "base", 1): 8, (1, "base", 2): 6, (2, "base", 1): 5, (2, "base", 2): -1,
                   (1, "comp", 1): 7, (1, "comp", 2): 3, (2, "comp", 1): 2, (2, "comp", 2): 9}
    assert set(single[0]) == {"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn", "tstamp"}

    answers = load_model_answers(str(out / "model_answer"))
    assert set(answers) == {"base", "comp"} and answers["comp"][2]["choices"][0]["turns"][1] == "comp b2"
    sj = load_single_model_judgments(str(out / "model_judgment" / "gpt-4_single.jsonl"))
    assert sj[("gpt-4", "single-v1")][(2, "base")]["score"] == 5
    pj = load_pairwise_model_judgments(str(out / "model_judgment" / "gpt-4_pair.jsonl"))
    games = pj[("gpt-4", "pair-v2")]
    assert games[(1, "base", "comp")]["winners"] == ("model_2",)
    assert games[(2, "base", "comp")]["winners"] == ("inconsistent",)
    questions = [json.loads(x) for x in (out / "question.jsonl").read_text().splitlines()]
    assert questions[1] == {"question_id": 2, "category": "math", "turns": ["1+1?", "Times 3?"],
                            "reference": ["2", "6"]}


def test_export_failed_pair_games_become_error(tmp_path: Path) -> None:
    """A run made by judge itself (roles set, api_error status) exports FastChat's 'error' winners."""
    from judge.schemas import ModelInfo, PairGame

    run = Run(tmp_path / "run")
    run.update_manifest(models={"baseline": ModelInfo(spec="x", name="m/x", path="x"),
                                "compressed": ModelInfo(spec="y", name="m/x", path="y")})
    g_ok = PairGame(a_role="baseline", b_role="compressed", user_prompt="p", judgment="[[A]]",
                    status="ok", winner="baseline")
    g_bad = PairGame(a_role="compressed", b_role="baseline", user_prompt="p", judgment="",
                     status="api_error", error="timeout")
    row = PairJudgment(question_id="q1", model_1="m/x", model_2="m/x", g1_winner="model_1",
                       g2_winner="error", judge=("qwen/j", "pair"), g1_user_prompt="p", g1_judgment="[[A]]",
                       g2_user_prompt="p", g2_judgment="", turn=1, tstamp=1.0, role_1="baseline",
                       role_2="compressed", games=[g_ok, g_bad], status="api_error")
    fail = SingleJudgment(question_id="q1", model="m/x", judge=("qwen/j", "single"), user_prompt="p",
                          judgment="", score=-1, turn=1, tstamp=1.0, role="compressed", status="api_error")
    for path, rec in ((run.pairwise_path, row), (run.single_path, fail)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rec.model_dump_json() + "\n")
    s = export_fastchat(run, tmp_path / "out")
    # same display name for both roles -> the role is appended; "/" is not file-safe
    assert s.models == {"baseline": "m_x-baseline", "compressed": "m_x-compressed"}
    pair = json.loads((tmp_path / "out" / "model_judgment" / "qwen_j_pair.jsonl").read_text())
    assert (pair["model_1"], pair["model_2"], pair["g1_winner"], pair["g2_winner"]) == (
        "m_x-baseline", "m_x-compressed", "model_1", "error")
    single = json.loads((tmp_path / "out" / "model_judgment" / "qwen_j_single.jsonl").read_text())
    assert single["score"] == -1 and single["model"] == "m_x-compressed"
    assert safe_name("../a b") == "_a_b"


def test_export_of_a_judge_run_reads_in_fastchat(tmp_path: Path, monkeypatch) -> None:
    """tests/synthetic_run.py: three roles, a retried key, an api_error, an invalid pair game."""
    from synthetic_run import write_synthetic_run

    run = write_synthetic_run(tmp_path / "run")
    out = tmp_path / "fc"
    s = export_fastchat(run, out)
    assert s.models == {"baseline": "baseline-model", "compressed": "compressed-model",
                        "control": "control-model"}
    # single: 8 keys per role; compressed (4, 2) only failed -> score -1; the failed (4, 1) try
    # before its retry is left out. pairs: compressed 6 games + (4, 1) invalid; control 8
    assert (s.single_rows, s.single_failed, s.pair_rows, s.pair_failed) == (24, 1, 15, 1)
    means = _show_single(out / "model_judgment" / "judge-model_single.jsonl", monkeypatch)
    assert means == pytest.approx({"baseline-model": 58 / 8, "compressed-model": 41 / 7,
                                   "control-model": 57 / 8}, abs=1e-12)
    wlt = _show_pairwise(out / "model_judgment" / "judge-model_pair.jsonl", monkeypatch)
    # compressed: (3,1) won; (1,1), (2,2) lost; (1,2), (3,2) ties, (2,1) inconsistent; (4,1) error
    assert wlt["compressed-model"] == (1, 2, 3) and wlt["control-model"] == (0, 0, 8)
    pairs = [json.loads(x) for x in (out / "model_judgment" / "judge-model_pair.jsonl").read_text().splitlines()]
    failed = [p for p in pairs if p["question_id"] == 4 and p["turn"] == 1 and p["model_2"] == "compressed-model"]
    assert [(p["g1_winner"], p["g2_winner"]) for p in failed] == [("error", "error")]


# --------------------------------------------------------------------------- real FastChat files


def test_means_equal_fastchat_show_result_without_duplicates(mtbench_dir: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    judgments = mtbench_dir / "model_judgment" / "gpt-4_single.jsonl"
    run = Run(tmp_path / "medusa")
    s = import_fastchat(mtbench_dir, "vicuna-7b-v1.3", MEDUSA, run)
    fastchat = _show_single(judgments, monkeypatch)
    ours = _judge_means(run)
    assert ours["vicuna-7b-v1.3"] == pytest.approx(fastchat["vicuna-7b-v1.3"], abs=1e-12)
    assert ours[MEDUSA] == pytest.approx(fastchat[MEDUSA], abs=1e-12)
    assert round(ours["vicuna-7b-v1.3"], 4) == 6.1031 and round(ours[MEDUSA], 4) == 5.9875
    assert s.ignored_rows == 160  # vicuna-7b-v1.3-greedy
    rows = [json.loads(x) for x in judgments.read_text().splitlines()]
    assert fastchat_mean(rows, MEDUSA) == pytest.approx(fastchat[MEDUSA], abs=1e-12)


def test_griffin_duplicates_explain_the_difference_from_fastchat(mtbench_dir: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    folder = mtbench_dir / "extra" / "llama3-8b-griffin"
    judgments = folder / "model_judgment" / "gpt-4_single-origin.jsonl"
    run = Run(tmp_path / "griffin")
    s = import_fastchat(folder, GRIFFIN_BASE, GRIFFIN_COMP, run, judge_files=[judgments],
                        questions=mtbench_dir / "question.jsonl")
    base, comp = s.roles
    assert (base.single_rows, base.single_ok, base.single_imported_error, base.single_duplicate) == (170, 160, 4, 6)
    assert (comp.single_rows, comp.single_ok) == (160, 160) and (base.answers, comp.answers) == (80, 80)

    fastchat = _show_single(judgments, monkeypatch)
    ours = _judge_means(run)
    assert round(fastchat[GRIFFIN_BASE], 4) == 7.8434  # duplicates averaged in
    assert round(ours[GRIFFIN_BASE], 4) == 7.7687  # one grade per (question, turn): the last valid
    assert ours[GRIFFIN_COMP] == pytest.approx(fastchat[GRIFFIN_COMP], abs=1e-12) == 2.7
    assert base.fastchat_mean == pytest.approx(fastchat[GRIFFIN_BASE], abs=1e-12)
    # FastChat's mean is judge's plus the 6 superseded valid rows, whose scores the source still has
    source = {r["tstamp"]: r["score"] for r in map(json.loads, judgments.read_text().splitlines())}
    dups = [source[r.tstamp] for r in read_jsonl(run.single_path, SingleJudgment) if r.status == "duplicate"]
    assert len(dups) == 6
    assert (ours[GRIFFIN_BASE] * 160 + sum(dups)) / (160 + len(dups)) == pytest.approx(fastchat[GRIFFIN_BASE], abs=1e-12)


def test_pairwise_counts_equal_fastchat_show_result(mtbench_dir: Path, tmp_path: Path, monkeypatch) -> None:
    folder = mtbench_dir / "extra" / "phi3-dpo-pairwise"
    run = Run(tmp_path / "phi3")
    s = import_fastchat(folder, "phi-3", "phi-3-dpo", run, questions=mtbench_dir)
    assert (s.pair_rows, s.pair_ok, s.pair_imported_error) == (75, 73, 2)
    rows = [r for r in read_jsonl(run.pairwise_path, PairJudgment) if r.status == "ok"]
    ours = (sum(r.winner == "compressed" for r in rows), sum(r.winner == "baseline" for r in rows),
            sum(r.winner == "tie" for r in rows))
    fastchat = _show_pairwise(folder / "model_judgment" / "gpt-4_pair.jsonl", monkeypatch)
    assert ours == fastchat["phi-3-dpo"] == (20, 18, 35)


def test_export_of_imported_runs_reads_back_in_fastchat(mtbench_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from fastchat.llm_judge.common import load_model_answers, load_single_model_judgments

    folder = mtbench_dir / "extra" / "llama3-8b-griffin"
    run = Run(tmp_path / "griffin")
    import_fastchat(folder, GRIFFIN_BASE, GRIFFIN_COMP, run, questions=mtbench_dir / "question.jsonl",
                    judge_files=[folder / "model_judgment" / "gpt-4_single-origin.jsonl"])
    out = tmp_path / "fc"
    s = export_fastchat(run, out)
    assert s.single_rows == 320 and s.single_failed == 0 and s.questions == 80
    answers = load_model_answers(str(out / "model_answer"))
    assert {m: len(a) for m, a in answers.items()} == {GRIFFIN_BASE: 80, GRIFFIN_COMP: 80}
    loaded = load_single_model_judgments(str(out / "model_judgment" / "gpt-4_single.jsonl"))
    assert sum(len(v) for v in loaded.values()) == 320
    fastchat = _show_single(out / "model_judgment" / "gpt-4_single.jsonl", monkeypatch)
    assert fastchat[GRIFFIN_BASE] == pytest.approx(7.76875, abs=1e-12)  # de-duplicated now
    assert fastchat[GRIFFIN_COMP] == pytest.approx(2.7, abs=1e-12)

    pair_run = Run(tmp_path / "phi3")
    folder = mtbench_dir / "extra" / "phi3-dpo-pairwise"
    import_fastchat(folder, "phi-3", "phi-3-dpo", pair_run, questions=mtbench_dir)
    s = export_fastchat(pair_run, tmp_path / "fc2")
    assert (s.pair_rows, s.pair_failed) == (75, 2)
    exported = _show_pairwise(tmp_path / "fc2" / "model_judgment" / "gpt-4_pair.jsonl", monkeypatch)
    source = _show_pairwise(folder / "model_judgment" / "gpt-4_pair.jsonl", monkeypatch)
    assert exported == source


def test_import_and_report_in_one_command(mtbench_dir: Path, tmp_path: Path, capsys) -> None:
    """The griffin folder (baseline vs an efficient-inference variant) imports and reports at once."""
    folder = mtbench_dir / "extra" / "llama3-8b-griffin"
    run_dir = tmp_path / "griffin"
    main(["import-fastchat", str(folder), "--baseline", GRIFFIN_BASE, "--compressed", GRIFFIN_COMP,
          "--judge-file", str(folder / "model_judgment" / "gpt-4_single-origin.jsonl"),
          "--questions", str(mtbench_dir / "question.jsonl"), "--run", str(run_dir)])
    out = capsys.readouterr().out
    assert "mean 7.7687 (FastChat show_result: 7.8434)" in out and "scorecard.json" in out
    card = json.loads((run_dir / "scorecard.json").read_text())
    overall = card["sections"][0]["grades"][0]
    assert (overall["n"], overall["baseline_mean"], overall["compressed_mean"]) == (
        160, pytest.approx(7.76875), pytest.approx(2.7))
    assert card["n_superseded"] == 10 and card["failures"] == []
    assert (run_dir / "report.html").is_file()
