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
