"""Reliability 3: the bad-input corpus (tests/bad_inputs/cases.toml and the files beside it).

Every case runs ``judge.cli.main`` in-process and must end with exit code 2 and exactly one line on
stderr, ``judge: error: ...``, that names the fault (and the file:line when a file is at fault),
with no traceback; an existing run folder (answers, judgments, manifest) must be byte-identical
afterwards, and no file may appear in it. Every file under the case's scratch folder (the user's
question files, configs, FastChat folders, a fresh run folder that must not appear) is compared too.

Most cases run in-process. ``via = "subprocess"`` runs ``python -m judge``; ``via =
"no_dac_override"`` runs it without ``CAP_DAC_OVERRIDE`` (``setpriv``), so a read-only folder is
read-only for root too; ``interrupt = "INT"|"TERM"`` sends that signal to a ``judge grade`` in the
middle of its judgments (against a slow fake judge) and expects exit code 130. Cases that need
``mount`` (a full disk: a 64 KiB tmpfs) or ``setpriv`` are skipped, with the reason, where those
are not available.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from reliability_support import (ROOT, OddServer, cli_env, dead_url, synthetic_run, torn_lines,
                                 write_questions)

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


def tiny_checkpoint(folder: Path, weights: bytes | None = None, config: str | None = None) -> Path:
    """A checkpoint folder with a real tokenizer (no model is loaded from it in these cases)."""
    from models.test_models import make_checkpoint

    make_checkpoint(folder)
    if weights is not None:
        (folder / "model.safetensors").write_bytes(weights)
    if config is not None:
        (folder / "config.json").write_text(config, encoding="utf-8")
    return folder


def fastchat_folder(folder: Path) -> Path:
    """A user's FastChat data folder: questions, one model's answers, its judgments."""
    (folder / "model_answer").mkdir(parents=True)
    (folder / "model_judgment").mkdir()
    (folder / "question.jsonl").write_text(
        '{"question_id": 1, "category": "writing", "turns": ["Hi?"]}\n', encoding="utf-8")
    (folder / "model_answer" / "theirs.jsonl").write_text(json.dumps(
        {"question_id": 1, "answer_id": "t1", "model_id": "theirs",
         "choices": [{"index": 0, "turns": ["Hello."]}], "tstamp": 1.0}) + "\n", encoding="utf-8")
    (folder / "model_judgment" / "gpt-4_single.jsonl").write_text(json.dumps(
        {"question_id": 1, "model": "theirs", "judge": ["gpt-4", "single-v1"], "user_prompt": "p",
         "judgment": "ok [[6]]", "score": 6, "turn": 1, "tstamp": 1.0}) + "\n", encoding="utf-8")
    return folder


def make_read_only(root: Path) -> None:
    for p in sorted(root.rglob("*"), reverse=True):
        p.chmod(0o555 if p.is_dir() else 0o444)
    root.chmod(0o555)


def mount_full_tmpfs(where: Path, request: pytest.FixtureRequest) -> Path:
    """A 64 KiB tmpfs at ``where``, to be filled by the setup; unmounted after the test."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): the "
                    "full-disk case needs root and mount permission")
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(where)], capture_output=True))
    return where


def fill(folder: Path, leave_bytes: int) -> None:
    """Fill the file system of ``folder`` until fewer than ``leave_bytes`` bytes are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    if free > leave_bytes:
        with open(folder / "filler", "wb") as fh:
            try:
                fh.write(b"\0" * (free - leave_bytes // 2))
            except OSError:
                pass


def apply_setup(kind: str, run: Run, request: pytest.FixtureRequest, tmp: Path,
                monkeypatch: pytest.MonkeyPatch) -> None:
    if kind == "tiny_checkpoint":
        tiny_checkpoint(tmp / "tiny")
    elif kind == "empty_weights":
        tiny_checkpoint(tmp / "tiny", weights=b"")
    elif kind == "truncated_weights":
        tiny_checkpoint(tmp / "tiny", weights=(4096).to_bytes(8, "little") + b'{"a": 1}')
    elif kind == "foreign_weights":
        tiny_checkpoint(tmp / "tiny", weights=b"PK\x03\x04 this is a zip, not safetensors" * 4)
    elif kind == "config_json_list":
        tiny_checkpoint(tmp / "tiny", config="[]")
    elif kind == "config_json_vocab_string":
        tiny_checkpoint(tmp / "tiny", config='{"model_type": "llama", "vocab_size": "big"}')
    elif kind == "fastchat_folder":
        fastchat_folder(tmp / "fc")
    elif kind == "fastchat_questions_only":
        (tmp / "fc").mkdir()
        (tmp / "fc" / "question.jsonl").write_text(
            '{"question_id": 7, "category": "roleplay", "turns": ["Be a pirate."]}\n', encoding="utf-8")
    elif kind == "fastchat_answer_is_folder":
        (fastchat_folder(tmp / "fc") / "model_answer" / "baseline.jsonl").mkdir()
    elif kind == "fastchat_broken":
        with open(fastchat_folder(tmp / "fc") / "question.jsonl", "a") as fh:
            fh.write('{"question_id": 2, "category": \n')
    elif kind == "a_file":
        (tmp / "afile").write_text("a user's file\n", encoding="utf-8")
    elif kind == "a_folder":
        (tmp / "adir").mkdir()
        (tmp / "adir" / "keep.txt").write_text("a user's file\n", encoding="utf-8")
    elif kind == "manifest_is_folder":
        run.manifest_path.unlink()
        run.manifest_path.mkdir()
    elif kind == "answers_is_folder":
        path = run.answers_path("compressed")
        path.unlink()
        path.mkdir()
        (path / "keep.txt").write_text("x\n", encoding="utf-8")
    elif kind == "judgments_is_file":
        shutil.rmtree(run.judgments_dir)
        run.judgments_dir.write_text("a file where judge keeps its judgments\n", encoding="utf-8")
    elif kind == "no_cache":
        run.judge_cache_path.unlink()
    elif kind == "cache_is_folder":
        run.judge_cache_path.unlink()
        run.judge_cache_path.mkdir()
    elif kind == "answers_unreadable":
        run.answers_path("compressed").chmod(0o000)
        request.addfinalizer(lambda: run.answers_path("compressed").chmod(0o644))
    elif kind == "read_only_run":
        make_read_only(run.root)
        request.addfinalizer(lambda: [p.chmod(0o755 if p.is_dir() else 0o644)
                                      for p in [run.root, *run.root.rglob("*")]])
    elif kind == "read_only_parent":
        (tmp / "ro").mkdir()
        (tmp / "ro").chmod(0o555)
        request.addfinalizer(lambda: (tmp / "ro").chmod(0o755))
    elif kind == "corrupt_cache":
        run.judge_cache_path.write_bytes(b"this is not an SQLite database, just text\n" * 40)
    elif kind == "truncated_cache":
        data = run.judge_cache_path.read_bytes()
        run.judge_cache_path.write_bytes(data[:100])
    elif kind == "locked_cache":
        import judge.grade.cache

        monkeypatch.setattr(judge.grade.cache, "OPEN_TIMEOUT_S", 0.3)
        holder = sqlite3.connect(run.judge_cache_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        request.addfinalizer(holder.close)
    elif kind in ("corrupt_tokens", "truncated_tokens"):
        d = run.divergence_dir
        d.mkdir()
        from synthetic_run import _kl

        from judge.schemas import TurnDivergence

        row = TurnDivergence(question_id=1, category="math", turn=1, role="compressed",
                             stats=_kl(2, 0.1, 0.2, 1.0, 0.0, 0.0))
        (d / "compressed.jsonl").write_text(row.model_dump_json() + "\n", encoding="utf-8")
        if kind == "corrupt_tokens":
            (d / "compressed.tokens.npz").write_bytes(b"\x00garbage, not a zip archive" * 10)
        else:
            import numpy as np

            import io
            buf = io.BytesIO()
            np.savez(buf, a=np.arange(1000))
            (d / "compressed.tokens.npz").write_bytes(buf.getvalue()[:300])
    elif kind == "recorded_generation":
        raw = json.loads(run.manifest_path.read_text(encoding="utf-8"))
        raw["config"]["generate:baseline"] = {"generation": {
            "sampling": "greedy", "max_new_tokens": 16, "seed": 0, "system_prompt": None},
            "engine": {}}
        run.manifest_path.write_text(json.dumps(raw), encoding="utf-8")
    elif kind in ("eof_in_report", "interrupt_in_report"):
        import judge.scorecard

        exc = EOFError("Ran out of input") if kind == "eof_in_report" else KeyboardInterrupt()

        def boom(*args: object, **kwargs: object) -> None:
            raise exc

        monkeypatch.setattr(judge.scorecard, "build_report", boom)
    elif kind == "disk_full":
        full = mount_full_tmpfs(tmp / "full", request)
        shutil.copytree(run.root, full / "run")
        fill(full, 512)
    elif kind == "tokenizer_mismatch":
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
    # the divergence passes' model loads (the stage runs them as executor workers)
    monkeypatch.setattr(judge.diverge.passes.CacheWorker, "__call__", refuse)
    monkeypatch.setattr(judge.diverge.passes.ScoreWorker, "__call__", refuse)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def user_files(tmp: Path) -> dict[str, str]:
    """Every file under the scratch folder but the run folder and the filler of a full disk, as
    its size and sha256 (a hash: a full-disk filler or a big generated file stays cheap)."""
    import hashlib

    out: dict[str, str] = {}
    for p in sorted(tmp.rglob("*")):
        rel = p.relative_to(tmp)
        if rel.parts[:2] == ("outputs", "prev") or p.name == "filler":
            continue
        if p.is_dir():
            out[str(rel) + "/"] = "dir"
        elif p.is_file():
            try:
                out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
            except PermissionError:
                out[str(rel)] = f"unreadable {p.stat().st_size}"
    return out


@pytest.fixture(scope="module")
def servers():
    """Judges for the endpoint and interrupt cases, started when a case first needs them."""
    from fake_openai import FakeOpenAIServer

    started: dict[str, object] = {}

    def get(name: str) -> str:
        if name not in started:
            if name == "JUDGE_URL":
                srv = FakeOpenAIServer()
            elif name == "SLOW_JUDGE_URL":
                srv = FakeOpenAIServer(latency_s=0.4)
            else:
                srv = OddServer({"HTML_URL": "html", "REJECT_URL": "reject", "HANG_URL": "hang",
                                 "NOT_HTTP_URL": "nothttp"}[name])
            if hasattr(srv, "__enter__") and not isinstance(srv, OddServer):
                srv.__enter__()
            started[name] = srv
        return started[name].base_url  # type: ignore[attr-defined]

    yield get
    for srv in started.values():
        if isinstance(srv, OddServer):
            srv.close()
        else:
            srv.__exit__(None, None, None)  # type: ignore[attr-defined]


def run_subprocess(case: dict, args: list[str], tmp: Path, run: Run, single_bytes: int = 0
                   ) -> tuple[int, str]:
    """`python -m judge ARGS` in ``tmp``: plain, without CAP_DAC_OVERRIDE, or interrupted."""
    env = cli_env(JUDGE_OUTPUTS=str(tmp / "outputs"), PYTHONPATH=f"{ROOT}:{ROOT / 'tests'}")
    for name in case.get("unset_env", []):
        env.pop(name, None)
    env.update(case.get("set_env", {}))
    cmd = [sys.executable, "-m", "judge", *args]
    if case.get("via") == "no_dac_override":
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is not installed: the read-only case needs it as root")
        if os.geteuid() == 0:
            drop = "-dac_override,-dac_read_search"  # root then obeys the files' modes, as a user
            cmd = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *cmd]
    if "interrupt" not in case:
        done = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=120)
        return done.returncode, done.stderr
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # until judgments are being written
        if run.single_path.is_file() and run.single_path.stat().st_size > single_bytes:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the grading finished before it could be interrupted"
    proc.send_signal(getattr(signal, f"SIG{case['interrupt']}"))
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


CLASSES = ("interrupt", "os", "corrupt", "config", "refused", "endpoint", "export", "noop")


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30
    names = [c["name"] for c in CASES]
    assert len(set(names)) == len(names)
    by_class = {k: sum(c.get("class") == k for c in CASES) for k in CLASSES}
    assert sum(by_class.values()) >= 40 and all(n >= 2 for n in by_class.values()), by_class
    assert all(c.get("class", "input") in (*CLASSES, "input") for c in CASES)


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
    setups = case.get("setup", [])
    for kind in [setups] if isinstance(setups, str) else setups:
        apply_setup(kind, run, request, tmp_path, monkeypatch)
    _no_heavy_work(monkeypatch)
    places = {"{CASES}": str(CASES_DIR), "{RUN}": str(run.root), "{QUESTIONS}": str(qfile),
              "{TMP}": str(tmp_path)}
    args = []
    for a in case["args"]:
        for k, v in places.items():
            a = a.replace(k, v)
        if "{DEAD_URL}" in a:
            a = a.replace("{DEAD_URL}", dead_url())
        for name in ("JUDGE_URL", "SLOW_JUDGE_URL", "HTML_URL", "REJECT_URL", "HANG_URL",
                     "NOT_HTTP_URL"):
            if "{" + name + "}" in a:
                a = a.replace("{" + name + "}", request.getfixturevalue("servers")(name))
        args.append(a)
    expected_code = 130 if "interrupt" in case else case.get("code", 2)
    interrupted = expected_code == 130
    single_bytes = run.single_path.stat().st_size if run.single_path.is_file() else 0
    before = snapshot(run.root) if os.access(run.root, os.R_OK) else {}
    before_user = user_files(tmp_path)

    if case.get("via") or "interrupt" in case:
        code, err = run_subprocess(case, args, tmp_path, run, single_bytes)
    else:
        with pytest.raises(SystemExit) as exc:
            main(args)
        code, err = exc.value.code, capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == expected_code, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("judge: interrupted" if interrupted else "judge: error: "), line
    assert case["expect"] in line, line
    if "where" in case:
        assert case["where"] in line, line
    assert len(line) < 600, line  # one readable line, not a dump of the input
    if "interrupt" in case:  # work was done and kept: every file whole, a rerun continues
        assert not [p for f in run.root.rglob("*.jsonl") for p in torn_lines(f)]
        assert not list(run.root.rglob("*.tmp"))
    else:
        assert snapshot(run.root) == before, "the failed command changed the existing run folder"
    assert user_files(tmp_path) == before_user, "the failed command changed or added a user file"
    if (tmp_path / "full" / "run").is_dir():
        assert not list((tmp_path / "full").rglob("*.tmp")), "a temporary file was left behind"
