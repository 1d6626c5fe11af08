#!/usr/bin/env bash
# On the lent GPU, once ../shared/gpu/install_on_device.sh has put vLLM 0.26 into /tmp/site: add the project's
# own wheels (carried in .whl) and run bench/fairness.py on the 8B-shaped dummy model (.gpu/model8b, made by
# make_model8b.py). Extra arguments go to fairness.py.
set -euo pipefail
if [ ! -f /tmp/site/.mcp-llm-wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  touch /tmp/site/.mcp-llm-wheels
fi
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0
export MCP_LLM_MODELS_DIR=/tmp/models
exec python3 bench/fairness.py --model .gpu/model8b --load-format dummy --dtype bfloat16 --no-eager \
  --out "${OUT:-/tmp}/fairness-h200.json" "$@"
