#!/usr/bin/env bash
# On the lent GPU, once install_on_device.sh has put vLLM 0.26 into /tmp/site: add the project's wheels (.whl),
# the peer (micytao's vllm-mcp-server 0.1.3 with mcp 1.x, carried as wheels in .gpu/peer, installed into its own
# folder /tmp/peer) and py-spy (.gpu/tools), then run bench/peers.py on the 8B-shaped dummy model (.gpu/model8b):
# 1,024 chat prompts of >= 128 tokens x 128 output tokens, 64 and 256 in flight. Extra arguments go to peers.py
# (e.g. --phases remote, --ours-before DIR, --profile, --front-ends 1,4). Writes $OUT/peers.json and the servers' logs.
set -euo pipefail
if [ ! -f /tmp/site/.mcp-llm-wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  touch /tmp/site/.mcp-llm-wheels
fi
if [ -d .gpu/peer ] && [ ! -d /tmp/peer ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/peer .gpu/peer/*.whl
fi
if [ -d .gpu/tools ] && [ ! -x /tmp/pyspy/bin/py-spy ]; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/pyspy .gpu/tools/py_spy-*.whl
fi
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0
export MCP_LLM_MODELS_DIR=/tmp/models
peer=()
if [ -d /tmp/peer ]; then  # the peer's README: `vllm-mcp-server` with VLLM_BASE_URL and VLLM_MODEL (set by peers.py)
  peer=(--peer-cmd "python3 -c 'from vllm_mcp_server.server import main; main()'" --peer-env "PYTHONPATH=/tmp/peer:/tmp/site")
fi
exec python3 bench/peers.py --model .gpu/model8b --load-format dummy --dtype bfloat16 \
  --prompts 1024 --prompt-tokens 128 --max-tokens 128 --concurrency 64,256 --k 30 \
  "${peer[@]}" --out "${OUT:-/tmp}/peers.json" "$@"
