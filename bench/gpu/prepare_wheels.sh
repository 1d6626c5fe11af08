#!/usr/bin/env bash
# Downloads the py3.12 wheels the lent GPU machine (no network; Python 3.12, torch 2.11.0+cu130, transformers
# 5.17, triton 3.6) needs besides vLLM, into git-ignored folders carried to it by device calls:
#   .whl/        the project's own runtime dependencies that neither the device image nor
#                ../shared/gpu/prepare.sh's wheel list (.gpu/wheels) provides; installed on the device by
#                bench/gpu/*_on_device.sh with `pip install --no-index --no-deps --upgrade --target /tmp/site`
#   .gpu/tools/  the py-spy wheel (profile_on_device.sh, peers_on_device.sh --profile)
#   .gpu/peer/   the peer MCP server vllm-mcp-server 0.1.3 (micytao) with mcp 1.x and its full dependency
#                closure, installed on the device into its own folder /tmp/peer (peers_on_device.sh)
# Runs after ../shared/gpu/prepare.sh (which makes .gpu/c1 ... .gpu/c7 and .gpu/wheels), from the project root:
#   bash ../shared/gpu/prepare.sh && bash bench/gpu/prepare_wheels.sh && python bench/gpu/make_model8b.py
# Versions are those of the project's venv where a py3.12 wheel exists. Left out of .whl on purpose: torch,
# transformers, triton, numpy and their dependencies (huggingface-hub, tokenizers, safetensors, regex, tqdm,
# packaging, pyyaml, jinja2, typing-extensions, ...: in the image); everything in .gpu/wheels (pydantic,
# starlette, jsonschema, h11, sniffio, gguf, opentelemetry-api, watchfiles, ...); matplotlib (charts only).
# Each device call carries at most 64 MiB with the source tree, so every folder is kept well under 60 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d .gpu/wheels ] || { echo "run ../shared/gpu/prepare.sh first (it makes .gpu/wheels)" >&2; exit 1; }

plat=(--platform manylinux_2_35_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_31_x86_64
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# Binary wheels for CPython 3.12 on x86_64 Linux only; a missing wheel stops the script (pipefail), pip's
# notes about find-links folders absent on this machine are dropped.
dl() {
  python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" "$@" 2>&1 |
    { grep -v "^WARNING: Location" || true; }
}

# .whl: the project's runtime closure that the image and .gpu/wheels lack.
rm -rf .whl && mkdir -p .whl
dl --no-deps -d .whl \
  mcp==2.3.0 mcp-types==2.3.0 truststore==0.10.5 \
  pydantic-settings==2.16.3 python-dotenv==1.2.4 python-multipart==0.0.34 sse-starlette==3.7.0 \
  pyjwt==2.15.1 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12 \
  sqlite-utils==4.2.1 click==8.5.1 click-default-group==1.2.4 sqlite-fts4==1.0.3 tabulate==0.10.0 \
  python-dateutil==4.0.0 tzdata==2026.6 pluggy==1.7.0 \
  uvicorn==0.54.0 httptools==0.9.0 uvloop==0.23.0 \
  aiohttp==3.14.5 aiohappyeyeballs==2.7.1 aiosignal==1.4.0 attrs==26.1.0 frozenlist==1.8.0 \
  multidict==7.2.1 propcache==0.5.4 yarl==1.25.1 \
  httpx==0.28.1 httpcore==1.0.9 anyio==4.16.0 idna==3.20 certifi==2026.10.19.post1 \
  prometheus-client==0.26.0 psutil==7.2.2 peft==0.21.2 accelerate==1.15.0

# .gpu/tools: py-spy (a static binary in a py2.py3 wheel).
rm -rf .gpu/tools && mkdir -p .gpu/tools
dl --no-deps -d .gpu/tools py-spy==0.4.3

# .gpu/peer: the peer and its whole closure (resolved by pip for py3.12), mcp held to 1.x.
rm -rf .gpu/peer && mkdir -p .gpu/peer
dl -d .gpu/peer vllm-mcp-server==0.1.3 mcp==1.30.0

ls .whl
du -sh .whl .gpu/tools .gpu/peer | sed 's/^/  /'
for d in .whl .gpu/tools .gpu/peer; do
  [ "$(du -sm "$d" | cut -f1)" -lt 60 ] || { echo "$d is 60 MiB or more: too large for one device call" >&2; exit 1; }
done
