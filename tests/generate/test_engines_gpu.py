"""The opt-in `gpu` tests of the engine seam: where weights land (device, ``device_map``), bfloat16
on CUDA, and which engine ``--engine auto`` runs. Skipped without CUDA (see conftest); each test
records the engine it ran (a junit property and a printed line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu


def said(record_property, engine: str) -> None:
    record_property("engine", engine)
    print(f"engine: {engine}")


def checkpoint_dtype(path: str) -> str | None:
    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    return config.get("dtype") or config.get("torch_dtype")


def prompts(path: str) -> list[list[int]]:
    from transformers import AutoTokenizer

    from judge.generate import conversation, prompt_ids

    tok = AutoTokenizer.from_pretrained(path)
    return [prompt_ids(tok, conversation(["Name a colour of the sky."], [])),
            prompt_ids(tok, conversation(["What is 2 + 3? Explain the sum in one sentence, "
                                          "then say it again."], []))]


def test_auto_engine_generates_on_the_device(gpu_model_path, accel_device, record_property):
    from judge.config import EngineOptions
    from judge.generate import auto_engine, make_engine, vllm_build
    from judge.schemas import SamplingSpec

    name, why = auto_engine()
    if vllm_build() is None:
        assert name == "hf", why  # the machines this project is lent: transformers on the GPU
    engine = make_engine(gpu_model_path, EngineOptions(engine="auto"))
    try:
        outs = engine.generate(prompts(gpu_model_path),
                               [SamplingSpec(temperature=0.0, max_new_tokens=8)] * 2)
    finally:
        engine.close()
    said(record_property, f"{engine.name} {engine.version} on {engine.device} ({why})")
    assert engine.name == name
    assert engine.device.startswith(accel_device)  # the default device is the GPU where there is one
    assert len(outs) == 2 and all(1 <= len(o.token_ids) <= 8 for o in outs)


def test_batched_greedy_equals_one_at_a_time(gpu_model_path, accel_device, record_property):
    """Left padding in a batch must not change a greedy answer (float32, where ties are rare)."""
    from judge.config import EngineOptions
    from judge.generate import make_engine
    from judge.schemas import SamplingSpec

    engine = make_engine(gpu_model_path, EngineOptions(engine="hf", dtype="float32"))
    spec = SamplingSpec(temperature=0.0, max_new_tokens=12)
    try:
        ps = prompts(gpu_model_path)
        assert len(ps[0]) != len(ps[1])  # so the shorter one is padded
        together = engine.generate(ps, [spec, spec])
        alone = [engine.generate([p], [spec])[0] for p in ps]
    finally:
        engine.close()
    said(record_property, f"hf on {engine.device}, float32")
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]


def test_weights_land_on_the_device_in_the_checkpoint_dtype(gpu_model_path, accel_device,
                                                            record_property):
    import torch

    from judge.config import EngineOptions
    from judge.generate import load_hf_model

    model, device = load_hf_model(gpu_model_path, EngineOptions(device=accel_device))
    said(record_property, f"transformers load_hf_model on {device}")
    assert device.type == accel_device
    assert {p.device.type for p in model.parameters()} == {accel_device}
    if accel_device == "cuda":  # "auto" keeps the checkpoint's dtype on a GPU
        expected = getattr(torch, checkpoint_dtype(gpu_model_path) or "bfloat16")
        assert {p.dtype for p in model.parameters()} == {expected}
    model32, _ = load_hf_model(gpu_model_path, EngineOptions(device=accel_device, dtype="float32"))
    assert {p.dtype for p in model32.parameters()} == {torch.float32}


def test_device_map_auto_places_the_model(gpu_model_path, accel_device, record_property):
    import torch

    from judge.config import EngineOptions
    from judge.generate import load_hf_model

    model, device = load_hf_model(gpu_model_path, EngineOptions(device_map="auto"))
    said(record_property, f"transformers device_map=auto, first weight on {device}")
    placed = getattr(model, "hf_device_map", None)
    assert device.type == accel_device
    if accel_device == "cuda":  # one GPU: every module on it (on a CPU-only machine transformers
        # keeps everything on the CPU and may record no map at all)
        assert placed, "accelerate did not record a device map"
        assert {torch.device(v if not isinstance(v, int) else f"cuda:{v}").type
                for v in placed.values()} == {"cuda"}
    ids = torch.tensor([prompts(gpu_model_path)[0]], device=device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits
    assert torch.isfinite(logits.float()).all()


def test_explicit_cpu_is_honoured_on_a_gpu_machine(gpu_model_path, accel_device, record_property):
    from judge.config import EngineOptions
    from judge.generate import load_hf_model

    if accel_device != "cuda":
        pytest.skip("only meaningful where a GPU is present")
    model, device = load_hf_model(gpu_model_path, EngineOptions(device="cpu"))
    said(record_property, "transformers load_hf_model on cpu")
    assert device.type == "cpu" and {p.device.type for p in model.parameters()} == {"cpu"}


def test_bfloat16_logits_stay_close_to_float32(gpu_model_path, accel_device, record_property):
    """bf16 computes in bf16 on the device, and its next-token distributions stay close to fp32's:
    mean KL(fp32 ‖ bf16) under 0.05 nats and the same top-1 token at 85% of positions or more."""
    import torch

    from judge.config import EngineOptions
    from judge.generate import load_hf_model

    ids = torch.tensor([prompts(gpu_model_path)[1]])
    out = {}
    for dtype in ("float32", "bfloat16"):
        model, device = load_hf_model(gpu_model_path, EngineOptions(device=accel_device, dtype=dtype))
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device)).logits[0]
        out[dtype] = logits
        del model
    said(record_property, f"transformers forward on {accel_device}, bfloat16 vs float32")
    assert out["bfloat16"].dtype == torch.bfloat16 and out["float32"].dtype == torch.float32
    p32 = torch.log_softmax(out["float32"].float(), dim=-1)
    p16 = torch.log_softmax(out["bfloat16"].float(), dim=-1)
    kl = (p32.exp() * (p32 - p16)).sum(-1)  # (positions,)
    same = (p32.argmax(-1) == p16.argmax(-1)).float().mean()
    print(f"mean KL(fp32 ‖ bf16) {kl.mean().item():.5f} nats, same top-1 {same.item():.1%}")
    assert kl.mean().item() < 0.05 and same.item() >= 0.85
