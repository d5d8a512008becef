"""judge.diverge.loadcheck: a format transformers cannot load here is refused before generation, in one
line naming what to install; formats it can load pass. Uses transformers' own quantizer checks."""

from __future__ import annotations

import importlib.util

import pytest

from judge.diverge import check_loadable
from judge.errors import EngineError
from judge.schemas import ModelInfo
from tests.models.test_formats import CT_FP8, CT_W4A16, CT_W8A8, write_config


def info(folder) -> ModelInfo:
    return ModelInfo(spec=str(folder), name=folder.name, path=str(folder))


def _missing(*modules: str) -> bool:
    return any(importlib.util.find_spec(m) is None for m in modules)


@pytest.mark.parametrize("qc", [None, CT_W4A16, CT_W8A8, CT_FP8,
                                {"quant_method": "fp8", "weight_block_size": [128, 128]}])
def test_loadable_formats_pass(tmp_path, qc):
    if qc is not None and qc["quant_method"] == "compressed-tensors" and _missing("compressed_tensors"):
        pytest.skip("compressed-tensors is not installed")
    check_loadable(info(write_config(tmp_path / "m", qc)))


@pytest.mark.parametrize("qc,needs,hint", [
    ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False},
     ("gptqmodel", "optimum"), "pip install gptqmodel optimum"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"},
     ("gptqmodel",), "pip install gptqmodel"),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
     ("bitsandbytes",), "pip install bitsandbytes"),
])
def test_formats_needing_packages_are_refused_with_what_to_install(tmp_path, qc, needs, hint):
    if not _missing(*needs):
        pytest.skip(f"{needs} installed here: transformers may load this format")
    with pytest.raises(EngineError) as err:
        check_loadable(info(write_config(tmp_path / "m", qc)))
    msg = str(err.value)
    assert "\n" not in msg and hint in msg and "--no-diverge" in msg
    assert f"({qc['quant_method']}" in msg  # names the format


def test_unknown_quant_method_is_refused(tmp_path):
    with pytest.raises(EngineError, match="no loader for quant_method 'brand-new'"):
        check_loadable(info(write_config(tmp_path / "m", {"quant_method": "brand-new"})))


def test_compare_refuses_before_generating(tmp_path, monkeypatch):
    """`judge compare` with a checkpoint transformers cannot load stops before any answer exists."""
    if _missing("gptqmodel") is False:
        pytest.skip("gptqmodel installed here")
    from judge.compare import compare, make_config
    from tests.models.test_models import make_checkpoint

    monkeypatch.setenv("JUDGE_CACHE", str(tmp_path / "cache"))
    base = make_checkpoint(tmp_path / "base")
    comp = write_config(make_checkpoint(tmp_path / "comp-gptq"),
                        {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False})
    q = tmp_path / "q.jsonl"
    q.write_text('{"question_id": 1, "category": "writing", "turns": ["Hi"]}\n')
    cfg = make_config({}, {"baseline": str(base), "compressed": [str(comp)], "questions": str(q),
                           "run": str(tmp_path / "run"), "judge": {"spec": "local:" + str(base)}})
    with pytest.raises(EngineError, match="pip install gptqmodel"):
        compare(cfg, progress=False, say=lambda *_: None)
    assert not (tmp_path / "run" / "answers").exists() or not any((tmp_path / "run" / "answers").iterdir())
