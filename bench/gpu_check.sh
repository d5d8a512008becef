#!/usr/bin/env bash
# The GPU check's entry on the GPU machine this project is lent (one H200, Python 3.12, torch 2.11,
# transformers 5.17; no vLLM, pydantic or gguf; no network). What it measures, on which models, and
# how the carried files are made: bench/gpu_check.py's docstring.
#
# 1. Here, once, under the heavy lock (downloads the wheels into .whl/, writes .gpucheck/):
#      flock /tmp/judge-heavy.lock /work/main/.venv/bin/python bench/gpu_check.py prepare
#    Wheels it downloads (bench/gpu_machine.py CARRIED_WHEELS), for CPython 3.12 manylinux x86-64:
#      pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
#      typing-extensions==4.16.0 gguf==0.19.0
#    judge itself travels as the working tree (PYTHONPATH). Not carried: vllm (too large; hf runs),
#    openai (nothing in the check imports it).
# 2. The device call (about 4 minutes of the command, 8 at most; the machine's start is extra),
#    from the checkout the session was started in (the device tool sends that one: run step 1 there):
#      run(command="bash bench/gpu_check.sh", carry=[".whl", ".gpucheck"], timeout_s=540)
#    It writes $OUT/gpu_check.json, gpu_check.log, gpu_tests.xml, engine_logs.txt, nvidia-smi.txt.
# The CPU dry run of the same script, here, under the lock (about 2 minutes):
#      JUDGE_GPU_CHECK_CPU=1 PYTHON=/work/main/.venv/bin/python bash bench/gpu_check.sh outputs/gpu-dry
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-${1:-/tmp/judge-gpu-check-out}}
mkdir -p "$out"
py=${PYTHON:-python3}
if [ "${JUDGE_GPU_CHECK_CPU:-0}" = 1 ]; then
  # the CPU dry run: this machine's venv (Python 3.11: the cp312 wheels do not install here)
  export PYTHONPATH="$PWD"
else
  site=/tmp/judge-gpu-site
  ls .whl/*.whl >/dev/null 2>&1 || { echo "no .whl/*.whl: run 'bench/gpu_check.py prepare' here and carry .whl"; exit 2; }
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl || exit 3
  export PYTHONPATH="$site:$PWD"
  nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$py" bench/gpu_check.py run --out "$out" "${@:2}" 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
