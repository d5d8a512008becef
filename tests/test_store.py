"""Run folder: crash-safe JSONL, atomic manifest, run names that cannot escape outputs/."""

from __future__ import annotations

import json
import os

import pytest

from judge.errors import InputFileError, RunFolderError
from judge.schemas import FORMAT_VERSION, QuestionSetInfo, SamplingSpec
from judge.store import Run, append_jsonl, iter_jsonl_raw, read_jsonl, resolve_run_dir, write_atomic


def test_append_and_read_roundtrip(tmp_path):
    p = tmp_path / "a" / "x.jsonl"
    assert append_jsonl(p, [SamplingSpec(temperature=0.5), SamplingSpec(seed=3)]) == 2
    rows = read_jsonl(p, SamplingSpec)
    assert [r.temperature for r in rows] == [0.5, 0.0] and rows[1].seed == 3


def test_torn_last_line_is_ignored_then_cut_before_append(tmp_path):
    p = tmp_path / "x.jsonl"
    append_jsonl(p, [{"a": 1}])
    with open(p, "ab") as fh:  # a crash in the middle of the second line
        fh.write(b'{"a": 2, "b": "unfinish')
    assert [o for _, o in iter_jsonl_raw(p)] == [{"a": 1}]
    append_jsonl(p, [{"a": 3}])
    assert p.read_bytes() == b'{"a": 1}\n{"a": 3}\n'


def test_torn_tail_with_no_complete_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a":')
    assert list(iter_jsonl_raw(p)) == []
    append_jsonl(p, [{"a": 1}])
    assert p.read_bytes() == b'{"a": 1}\n'


def test_bad_json_names_file_and_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n\n{"a": \n', encoding="utf-8")
    with pytest.raises(InputFileError) as err:
        list(iter_jsonl_raw(p))
    assert f"{p}:3:" in str(err.value)


def test_invalid_utf8_names_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n')
    with pytest.raises(InputFileError, match=r":2: not valid UTF-8"):
        list(iter_jsonl_raw(p))


def test_validation_error_names_field(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"temperature": -1}\n', encoding="utf-8")
    with pytest.raises(InputFileError, match=r":1: invalid SamplingSpec: temperature"):
        read_jsonl(p, SamplingSpec)


def test_write_atomic_leaves_no_temp(tmp_path):
    p = tmp_path / "m.json"
    write_atomic(p, "one")
    write_atomic(p, "two")
    assert p.read_text() == "two"
    assert os.listdir(tmp_path) == ["m.json"]


def test_manifest_merge_and_version_check(tmp_path):
    run = Run(tmp_path / "r")
    info = QuestionSetInfo(name="s", path="p", sha256="ab", n_questions=1, categories={"math": 1})
    run.update_manifest(questions=info, versions={"a": "1"})
    m = run.update_manifest(versions={"b": "2"})
    assert m.versions == {"a": "1", "b": "2"} and m.questions == info and m.run == "r"
    run.mark_stage("generate:baseline", started=True)
    run.mark_stage("generate:baseline", finished=True)
    st = run.load_manifest().stages["generate:baseline"]
    assert st.started is not None and st.finished >= st.started
    raw = json.loads(run.manifest_path.read_text())
    raw["format_version"] = FORMAT_VERSION + 1
    run.manifest_path.write_text(json.dumps(raw))
    with pytest.raises(RunFolderError, match="format"):
        run.load_manifest()


@pytest.mark.parametrize("name", ["..", ".hidden", "a b", "x;rm", "", "-rf"])
def test_run_names_cannot_escape(name, monkeypatch, tmp_path):
    monkeypatch.setenv("JUDGE_OUTPUTS", str(tmp_path))
    with pytest.raises(RunFolderError):
        resolve_run_dir(name)


def test_run_name_and_path(monkeypatch, tmp_path):
    monkeypatch.setenv("JUDGE_OUTPUTS", str(tmp_path))
    assert resolve_run_dir("demo-1") == tmp_path / "demo-1"
    assert str(resolve_run_dir("some/where")) == "some/where"


def test_write_atomic_leaves_no_temp_file_and_the_old_content_when_the_write_fails(tmp_path, monkeypatch):
    import errno

    target = tmp_path / "manifest.json"
    target.write_text("old\n", encoding="utf-8")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    try:
        write_atomic(target, "new\n")
    except OSError as err:
        assert err.errno == errno.ENOSPC
    else:
        raise AssertionError("the failing write did not raise")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]  # no .tmp left


def test_write_atomic_names_the_target_not_its_temp_file(tmp_path):
    (tmp_path / "out.json").mkdir()  # a folder where the file goes
    try:
        write_atomic(tmp_path / "out.json", "x")
    except IsADirectoryError as err:
        assert err.filename == str(tmp_path / "out.json")
    else:
        raise AssertionError("writing over a folder did not raise")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
