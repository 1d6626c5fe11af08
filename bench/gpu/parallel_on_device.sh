#!/usr/bin/env bash
# On the lent multi-GPU machine, once ../shared/gpu/install_on_device.sh has put vLLM 0.26 into /tmp/site:
# add the project's wheels (carried in .whl) and run bench/gpu/parallel.py with the given layouts
# (tp1, tp2, dp2) on the 8B-shaped dummy model (carried in .gpu/model8b).
set -euo pipefail
if [ ! -f /tmp/site/.mcp-llm-wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  touch /tmp/site/.mcp-llm-wheels
fi
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
exec python3 bench/gpu/parallel.py "$@" --out "${OUT:-/tmp}/parallel-$(echo "$@" | tr ' ' '-').json"
