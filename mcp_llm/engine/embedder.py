"""The pooling engine behind `embed`: a second in-process vLLM `AsyncLLM` (`runner="pooling"`) beside
the generator, started only when `embedding_model` is set. Imports vLLM lazily, like `local`."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from mcp_llm.engine.local import _tokenizer, import_vllm, resolve_dtype
from mcp_llm.errors import InputError

log = logging.getLogger(__name__)

CPU_KV_CACHE_BYTES = 256 << 20  # pooling requests are prefill only: a small cache holds many at once
GPU_MEMORY_FRACTION = 0.05  # beside a generator that takes vLLM's default 0.9


class Embedder:
    """Text → vector through vLLM's pooling runner; one request per text, all submitted at once."""

    def __init__(self, llm: Any, model_name: str) -> None:
        self._llm = llm
        self.model_name = model_name
        self._tokenizer = _tokenizer(llm)
        self.max_model_len: int = llm.vllm_config.model_config.max_model_len
        self.dimension: int = llm.vllm_config.model_config.get_hidden_size()

    @classmethod
    async def start(cls, model_path: str, model_name: str) -> Embedder:
        await import_vllm()  # off the event loop (a no-op when the generator imported it already)
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        args: dict[str, Any] = {"model": model_path, "runner": "pooling", "served_model_name": model_name}
        args["dtype"] = resolve_dtype("auto")
        if current_platform.is_cpu():
            args |= {"enforce_eager": True, "kv_cache_memory_bytes": CPU_KV_CACHE_BYTES}
        else:
            args["gpu_memory_utilization"] = GPU_MEMORY_FRACTION
        started = time.perf_counter()
        llm = await asyncio.to_thread(AsyncLLM.from_engine_args, AsyncEngineArgs(**args))
        log.info("embedding engine ready in %.1f s (%s)", time.perf_counter() - started, model_name)
        return cls(llm, model_name)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text (with the model's special tokens); InputError naming any text over the context."""
        ids = [list(self._tokenizer.encode(text)) for text in texts]
        for index, one in enumerate(ids):
            if len(one) > self.max_model_len:
                raise InputError(
                    f"texts[{index}] has {len(one)} tokens, but the embedding model {self.model_name} takes at most "
                    f"{self.max_model_len}: split it into smaller pieces."
                )
        return ids

    async def embed(self, token_ids: list[list[int]], normalize: bool, request_id: str) -> list[list[float]]:
        """One vector per input, in input order (unit length when `normalize`)."""
        from vllm import PoolingParams

        params = PoolingParams(task="embed", use_activation=normalize)

        async def one(index: int, ids: list[int]) -> list[float]:
            final = None
            async for output in self._llm.encode({"prompt_token_ids": ids}, params, f"{request_id}-{index}"):
                final = output
            assert final is not None
            return final.outputs.data.tolist()

        return list(await asyncio.gather(*(one(i, ids) for i, ids in enumerate(token_ids))))

    def shutdown(self) -> None:
        self._llm.shutdown()
        log.info("embedding engine stopped")
