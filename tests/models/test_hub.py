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
    assert weights.sha256 == hashlib.sha256((src / "model.safetensors").read_bytes()).hexdigest()
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
        assert "\n" not in msg and "not in the local Hugging Face hub cache" in msg, msg
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
    assert len(lines) == 1 and "org/absent is not in the local Hugging Face hub cache" in lines[0], lines


# --------------------------------------------------------------------------- online, against a fake hub


@pytest.fixture
def online_hub(tmp_path, monkeypatch):
    """A fake hub on 127.0.0.1 (tests/fake_hub.py) with one public, one gated repository."""
    from huggingface_hub import constants

    from fake_hub import FakeHub

    src = make_checkpoint(tmp_path / "src")
    (src / "model.bin").write_bytes(b"pickle weights judge must not fetch")
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("JUDGE_CACHE", str(tmp_path / "judge-cache"))
    monkeypatch.chdir(tmp_path)
    with FakeHub({"org/tiny": (COMMIT_B, src), "org/gated": (COMMIT_A, src)},
                 gated=("org/gated",)) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        yield hub, cache, src


def test_online_download_into_the_hub_cache_then_offline(online_hub, monkeypatch):
    from huggingface_hub import constants

    hub, cache, src = online_hub
    info = resolve_model("org/tiny")
    assert info.revision == COMMIT_B
    assert Path(info.path) == cache / "models--org--tiny" / "snapshots" / COMMIT_B
    fetched = sorted(p.name for p in Path(info.path).iterdir())
    assert fetched == ["config.json", "model.safetensors", "tokenizer.json"]  # no model.bin
    assert info.fingerprint.weights[0].sha256 == hashlib.sha256((src / "model.safetensors").read_bytes()).hexdigest()
    assert (cache / "models--org--tiny" / "refs" / "main").read_text() == COMMIT_B
    assert not any("model.bin" in r for r in hub.requests)
    assert any(r.startswith("GET /org/tiny/resolve/") for r in hub.requests), hub.requests
    # the same id resolves offline afterwards from what was downloaded, without a request
    n = len(hub.requests)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve_model("org/tiny").revision == COMMIT_B and len(hub.requests) == n


@pytest.mark.parametrize("spec,fragment", [
    ("org/gated", "gated repository"),
    ("org/absent", "has no model of that name"),
    ("org/tiny@v9", "has no revision 'v9'"),
])
def test_online_failures_are_one_line(online_hub, spec, fragment):
    with pytest.raises(ModelSpecError) as err:
        resolve_model(spec)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg, msg
