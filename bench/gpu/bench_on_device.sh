#!/usr/bin/env bash
# On the lent GPU, once ../shared/gpu/install_on_device.sh has put vLLM 0.26 into /tmp/site: add the
# project's own wheels (carried in .whl), then run the benchmark on the 8B-shaped dummy model made by
# make_model8b.py (carried in .gpu/model8b). Extra arguments go to bench.py (e.g. --stages b). The decode
# roofline is this GPU's own (bench.py measures its HBM read bandwidth; --roofline-tok-s overrides it).
set -euo pipefail
if [ ! -f /tmp/site/.mcp-llm-wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  touch /tmp/site/.mcp-llm-wheels
fi
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0
exec python3 bench/bench.py --model .gpu/model8b --load-format dummy --dtype bfloat16 \
  --prompts 1024 --prompt-tokens 128 --max-tokens 128 --concurrency 64 --decode-tokens 512 \
  --overhead-calls 100 --out "${OUT:-/tmp}/bench.json" "$@"
