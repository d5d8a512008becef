"""Reliability 3: the bad-input corpus (tests/bad_inputs/cases.toml and the files beside it).

Every case runs ``judge.cli.main`` in-process and must end with exit code 2 and exactly one line on
stderr, ``judge: error: ...``, that names the fault (and the file:line when a file is at fault),
with no traceback; an existing run folder (answers, judgments, manifest) must be byte-identical
afterwards, and no file may appear in it.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
from reliability_support import dead_url, synthetic_run, write_questions

from judge.grade.cache import CachedResponse, JudgeCache
from judge.schemas import SingleJudgment
from judge.store import Run, append_jsonl

CASES_DIR = Path(__file__).resolve().parents[1] / "bad_inputs"
CASES: list[dict] = tomllib.loads((CASES_DIR / "cases.toml").read_text(encoding="utf-8"))["case"]


def existing_run(root: Path) -> tuple[Run, Path]:
    """A run folder with a manifest, two roles' answers, a judgments file and a judge cache."""
    qfile = write_questions(root / "questions.jsonl", 3)
    run = synthetic_run(root / "outputs" / "prev", qfile)
    append_jsonl(run.single_path, [SingleJudgment(
        question_id=1, model="model-baseline", judge=("fake-judge", "single"), user_prompt="p",
        judgment="Fine. [[7]]", score=7.0, turn=1, tstamp=0.0, role="baseline")])
    with JudgeCache(run.judge_cache_path) as cache:
        cache.put("0" * 64, CachedResponse("fake-judge", "SingleVerdict", "Fine. [[7]]",
                                           '{"explanation": "Fine.", "issues": [], "rating": 7}',
                                           11, 7, "text"))
    return run, qfile


def make_generated(kind: str, path: Path) -> None:
    ok = json.dumps({"question_id": 1, "category": "writing", "turns": ["Fine?"]})
    if kind == "huge_turn":
        big = json.dumps({"question_id": 2, "category": "writing", "turns": ["x" * 150_000]})
        path.write_text(ok + "\n" + big + "\n", encoding="utf-8")
    elif kind == "deep_nesting":
        path.write_text('{"question_id": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    elif kind == "huge_line":
        path.write_text('{"question_id": 1, "turns": ["' + "y" * 8_000_000 + "\n", encoding="utf-8")
    else:
        raise ValueError(kind)


def renamed_vocab_checkpoint(base_dir: Path, target: Path) -> Path:
    """smollm2-135m's config and tokenizer files (no weights) with one extra vocabulary entry."""
    target.mkdir()
    for f in base_dir.iterdir():
        if f.is_file() and f.suffix not in (".safetensors", ".bin", ".gguf"):
            shutil.copy(f, target / f.name)
    tj = json.loads((target / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tj["model"]["vocab"]
    top = max([*vocab.values(), *(t["id"] for t in tj.get("added_tokens", []))])
    vocab["zzz_judge_reliability_test"] = top + 1
    (target / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    return target


def apply_setup(kind: str, run: Run, request: pytest.FixtureRequest, tmp: Path) -> None:
    if kind == "tokenizer_mismatch":
        from judge.models.registry import resolve_model

        base = request.getfixturevalue("base_model")  # the embedded smollm2-135m, built once
        other = renamed_vocab_checkpoint(Path(base.path), tmp / "other_tokenizer")
        run.update_manifest(models={"baseline": base, "compressed": resolve_model(str(other))})
    elif kind == "no_compressed":
        run.answers_path("compressed").unlink()
    elif kind == "other_version":
        raw = json.loads(run.manifest_path.read_text(encoding="utf-8"))
        raw["format_version"] = 99
        run.manifest_path.write_text(json.dumps(raw), encoding="utf-8")
    elif kind == "corrupt_manifest":
        run.manifest_path.write_text('{"format_version": 1, "run": ', encoding="utf-8")
    elif kind == "torn_answers_middle":
        path = run.answers_path("baseline")
        lines = path.read_bytes().split(b"\n")
        lines[1] = lines[1][: len(lines[1]) // 2]  # a crash of a writer that does not fsync lines
        path.write_bytes(b"\n".join(lines))
    else:
        raise ValueError(kind)


def _no_heavy_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A case that slips past validation must fail fast here, not load a model or start vLLM."""
    import judge.diverge.passes
    import judge.generate.engines
    import judge.grade.server
    import judge.models.registry

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the bad input was not refused before the heavy work started")

    monkeypatch.setattr(judge.generate.engines, "make_engine", refuse)
    monkeypatch.setattr(judge.grade.server.LocalJudgeServer, "start", refuse)
    monkeypatch.setattr(judge.models.registry, "build_model", refuse)
    monkeypatch.setattr(judge.diverge.passes, "baseline_pass", refuse)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30
    names = [c["name"] for c in CASES]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", [pytest.param(c, marks=[pytest.mark.slow] if c.get("slow") else [])
                                  for c in CASES], ids=[c["name"] for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(case: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str],
                                             request: pytest.FixtureRequest) -> None:
    from judge.cli import main

    run, qfile = existing_run(tmp_path)
    monkeypatch.setenv("JUDGE_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.chdir(tmp_path)
    for name in case.get("unset_env", []):
        monkeypatch.delenv(name, raising=False)
    for name, value in case.get("set_env", {}).items():
        monkeypatch.setenv(name, value)
    if "make" in case:
        make_generated(case["make"], tmp_path / "generated.jsonl")
    if "setup" in case:
        apply_setup(case["setup"], run, request, tmp_path)
    _no_heavy_work(monkeypatch)
    before = snapshot(run.root)
    places = {"{CASES}": str(CASES_DIR), "{RUN}": str(run.root), "{QUESTIONS}": str(qfile),
              "{TMP}": str(tmp_path), "{DEAD_URL}": dead_url()}
    args = []
    for a in case["args"]:
        for k, v in places.items():
            a = a.replace(k, v)
        args.append(a)

    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert exc.value.code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("judge: error: "), line
    assert case["expect"] in line, line
    if "where" in case:
        assert case["where"] in line, line
    assert len(line) < 600, line  # one readable line, not a dump of the input
    assert snapshot(run.root) == before, "the failed command changed the existing run folder"
