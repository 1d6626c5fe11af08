"""The engines, and the only home of vLLM: `base` (the EngineBackend interface and context checks; no vLLM),
`local` (the in-process AsyncLLM), `embedder` (a pooling AsyncLLM behind `embed`, through local's lazy import),
`remote` (a vLLM deployment over its OpenAI API; vLLM's tokenizer helpers for the remote model), `swap` (the
swappable engine everyone holds), `reaper` (stale engines) and `vllm_patches` (the vLLM plugin). vLLM, torch and
transformers are imported on first use only, never at package import (the handshake stays light). Nothing here
imports mcp_llm.core or the MCP server (tests/unit/test_layers.py checks)."""

from mcp_llm.engine.base import EngineBackend, EngineState

__all__ = ["EngineBackend", "EngineState"]
