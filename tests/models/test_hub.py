"""judge.models.hub: hub ids resolved through huggingface_hub's own cache, offline, in its real layout
(tests/hf_cache.py builds it), and every failure as one line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from judge.errors import ModelSpecError
from judge.models import resolve_model
from judge.models.hub import parse_hub_spec
from tests.hf_cache import add_snapshot
from tests.models.test_models import make_checkpoint

COMMIT_A = "a" * 40
COMMIT_B = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("JUDGE_CACHE", str(tmp_path / "judge-cache"))
    monkeypatch.chdir(tmp_path)
    return cache


@pytest.mark.parametrize("text,expected", [
    ("org/name", ("org", "name", None)),
    ("Org-1/na.me_2@v1.0", ("Org-1", "na.me_2", "v1.0")),
    ("org/name@" + COMMIT_B, ("org", "name", COMMIT_B)),
    ("org/name@refs/pr/3", ("org", "name", "refs/pr/3")),
])
def test_parse_hub_spec(text, expected):
    org, name, rev = expected
    assert parse_hub_spec(text) == (f"{org}/{name}", rev)


@pytest.mark.parametrize("text", ["name", "a/b/c", "./x/y", "/abs/path", "org/", "org/name@", "-o/n"])
def test_not_hub_specs(text):
    assert parse_hub_spec(text) is None


def test_cached_hub_id_resolves_offline_with_revision_and_content_hashes(tmp_path, hub_cache):
    src = make_checkpoint(tmp_path / "src")
    snap = add_snapshot(hub_cache, "org/tiny", src, commit=COMMIT_A)
    info = resolve_model("org/tiny")
    assert Path(info.path) == snap and info.name == "tiny" and info.revision == COMMIT_A
    assert not info.embedded and info.format == "unquantized"
    (weights,) = info.fingerprint.weights
    assert weights.name == "model.safetensors" and weights.bytes == 100
    assert weights.sha256 == hashlib.sha256(b"\0" * 100).hexdigest()
    assert info.fingerprint.vocab_size == 4
    # a local folder's fingerprint has no content hash (hashing GBs is not free), but is otherwise equal
    local = resolve_model(str(src)).fingerprint
    assert local.weights[0].sha256 is None
    assert local.model_copy(update={"weights": []}) == info.fingerprint.model_copy(update={"weights": []})


def test_revision_by_tag_and_by_commit(tmp_path, hub_cache):
    add_snapshot(hub_cache, "org/tiny", make_checkpoint(tmp_path / "v0"), commit=COMMIT_A)
    v1 = make_checkpoint(tmp_path / "v1", vocab_size=8)
    add_snapshot(hub_cache, "org/tiny", v1, commit=COMMIT_B, branch="v1")
    assert resolve_model("org/tiny").revision == COMMIT_A  # main
    tagged = resolve_model("org/tiny@v1")
    assert tagged.revision == COMMIT_B and tagged.fingerprint.vocab_size == 8
    assert tagged.spec == "org/tiny@v1"
    assert resolve_model(f"org/tiny@{COMMIT_B}").revision == COMMIT_B


def test_uncached_hub_id_or_revision_is_one_line(tmp_path, hub_cache):
    add_snapshot(hub_cache, "org/tiny", make_checkpoint(tmp_path / "src"), commit=COMMIT_A)
    for spec in ("org/absent", "org/tiny@no-such-tag"):
        with pytest.raises(ModelSpecError) as err:
            resolve_model(spec)
        msg = str(err.value)
        assert "\n" not in msg and "not in the local Hugging Face cache" in msg, msg
        assert "HF_HUB_OFFLINE" in msg and "hf download" in msg


def test_snapshot_without_weights_or_config(tmp_path, hub_cache):
    src = make_checkpoint(tmp_path / "src")
    add_snapshot(hub_cache, "org/noweights", src, commit=COMMIT_A, files=["config.json", "tokenizer.json"])
    with pytest.raises(ModelSpecError, match="no .safetensors weights"):
        resolve_model("org/noweights")
    add_snapshot(hub_cache, "org/noconfig", src, commit=COMMIT_A, files=["model.safetensors"])
    with pytest.raises(ModelSpecError, match="no config.json"):
        resolve_model("org/noconfig")


def test_cli_uncached_hub_id_exits_2_with_one_line(tmp_path, hub_cache, two_questions, capsys):
    from judge.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "org/absent", "--questions", str(two_questions), "--run", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].count("org/absent is not in the local Hugging Face cache") == 1
    assert not any("Traceback" in ln for ln in lines)
