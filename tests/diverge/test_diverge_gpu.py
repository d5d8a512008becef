"""The opt-in `gpu` test of the divergence stage: generate and diverge on the device, end to end.

A model against itself: every per-token KL is zero up to rounding and every top-1 agrees, whatever
the device; the answers record the engine that wrote them. Skipped without CUDA (see conftest)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


def test_generate_and_diverge_on_the_device(tmp_path, two_questions, gpu_model_path, accel_device,
                                            record_property):
    from judge.config import EngineOptions, GenerationConfig
    from judge.diverge import DivergeOptions, diverge, load_divergence
    from judge.generate import auto_engine, generate
    from judge.models import resolve_model
    from judge.questions import load_questions
    from judge.store import Run, read_jsonl
    from judge.schemas import Answer

    run = Run(tmp_path / "run")
    info, questions = load_questions(two_questions)
    model = resolve_model(gpu_model_path)
    res = generate(run, model, questions, info, role="baseline",
                   gen=GenerationConfig(max_new_tokens=16), engine_options=EngineOptions(),
                   progress=False)
    assert res.generated == 2
    run.update_manifest(models={"compressed": model})
    (d,) = diverge(run, ["compressed"], DivergeOptions(device=accel_device), progress=False)
    engines = {a.engine for a in read_jsonl(run.answers_path("baseline"), Answer)}
    record_property("engine", f"{'/'.join(sorted(engines))} (generate), hf (diverge) on "
                              f"{accel_device}")
    print(f"engine: {engines} generate, hf diverge on {accel_device}")
    assert engines == {auto_engine()[0]}
    arrays = load_divergence(run, "compressed")[1]
    assert arrays.n_tokens == d.summary.overall.n_tokens > 0
    assert float(abs(arrays.kl).max()) < 1e-4
    assert bool(arrays.same_top1.all())
