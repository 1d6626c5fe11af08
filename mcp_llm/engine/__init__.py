"""What handlers call to reach an engine; only `local` imports vLLM."""

from mcp_llm.engine.base import EngineBackend, EngineState

__all__ = ["EngineBackend", "EngineState"]
