"""Reliability 6: a run name, a role or a question id cannot make judge write outside its folders.

* A bare run name resolves inside ``outputs/`` or is refused (``..``, dot-files, separators,
  control characters, non-ASCII look-alikes, over-long names); a path with a slash is the user's
  explicit choice and is used as given.
* Question ids and model names that look like paths (``../../x``, ``/etc/x``, NUL, escapes) go
  through grade, report, review and export-fastchat without a file appearing anywhere but the run
  folder and the export folder.
* Roles are a closed pattern: a manifest whose role would be a path is refused on load.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer
from reliability_support import cli_env, judge_cmd, synthetic_run

from judge.errors import RunFolderError
from judge.grade.stage import grade_run
from judge.store import Run, resolve_run_dir

BAD_NAMES = ["..", ".", "...", ".hidden", "-rf", "a b", "a\\b", "a\x00b", "a\nb", "\x1b[2J",
             "x" * 129, "~", "$HOME", "．．", "run\u202e", "ｒｕｎ", ""]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
def test_a_bare_run_name_that_could_escape_is_refused(name: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_OUTPUTS", str(tmp_path / "outputs"))
    with pytest.raises(RunFolderError) as err:
        resolve_run_dir(name)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["run", "smollm2-135m__vs__smollm2-135m-int4__smoke", "a.b_c-1",
                                  "x" * 128, "a..b"])
def test_an_accepted_run_name_stays_directly_inside_outputs(name: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("JUDGE_OUTPUTS", str(outputs))
    path = resolve_run_dir(name)
    assert path.resolve().parent == outputs.resolve() and path.name == name


HOSTILE_IDS = ["../../escaped", "/tmp/judge-escaped", "..", "a/b\\c", "id with spaces",
               "\x1b[2Jid", "nul\x00id", "q" * 300, 7]


def test_hostile_question_ids_and_model_names_write_nothing_outside(tmp_path: Path) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps({"question_id": qid, "category": "../../cat",
                                         "turns": [f"Question {i}?"]}) + "\n"
                             for i, qid in enumerate(HOSTILE_IDS)), encoding="utf-8")
    run = synthetic_run(tmp_path / "outputs" / "run", qfile)
    manifest = json.loads(run.manifest_path.read_text(encoding="utf-8"))
    for role in ("baseline", "compressed"):  # model names that look like paths
        manifest["models"][role] = {"spec": f"../../{role}", "name": f"../../../{role}-escaped",
                                    "path": f"/nonexistent/{role}"}
    run.manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    before = {p for p in Path("/tmp").glob("judge-escaped*")}

    with FakeOpenAIServer() as srv:
        summary = grade_run(run, "../../judge/model", base_url=srv.base_url, progress=False)
    assert summary.ok == summary.written == 3 * len(HOSTILE_IDS)  # 2 single + 1 pair per id
    env = cli_env(JUDGE_OUTPUTS=str(tmp_path / "outputs"))
    for args in (["report", str(run.root), "--resamples", "200", "--no-show"],
                 ["review", str(run.root), "--limit", "0"],
                 ["review", str(run.root), "--question", "../../escaped"],
                 ["export-fastchat", str(run.root), str(tmp_path / "export")]):
        out = subprocess.run(judge_cmd(*args), env=env, cwd=tmp_path / "outputs", capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, (args, out.stderr)

    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    outside = [p for p in written if not (p.is_relative_to(run.root)
                                          or p.is_relative_to(tmp_path / "export") or p == qfile)]
    assert outside == []
    assert {p for p in Path("/tmp").glob("judge-escaped*")} == before
    assert not any(part == ".." for p in written for part in p.relative_to(tmp_path).parts)


def test_a_manifest_role_that_is_a_path_is_refused(tmp_path: Path) -> None:
    from judge.store import Run as RunFolder

    run = RunFolder(tmp_path / "run")
    run.update_manifest()
    raw = json.loads(run.manifest_path.read_text(encoding="utf-8"))
    raw["models"]["compressed/../../../escaped"] = {"spec": "m", "name": "m", "path": "/nowhere"}
    run.manifest_path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(RunFolderError) as err:
        run.load_manifest()
    assert "manifest.json" in str(err.value) and "\n" not in str(err.value)


def test_a_role_flag_that_is_a_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from judge.cli import main

    run = Run(tmp_path / "run")
    run.update_manifest()
    monkeypatch.chdir(tmp_path)
    for args in (["diverge", str(run.root), "--role", "../../x"],
                 ["generate", "smollm2-135m", "-q", "smoke", "-r", str(run.root), "--role", "../x"]):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
        assert capsys.readouterr().err.startswith("judge: error: ")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["manifest.json", "run"]
