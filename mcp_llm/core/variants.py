"""Engine variants: a named set of engine settings that `benchmark` and `tune_serving` serve for a while
through the hot swap, then roll back from, whatever happened in between."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mcp_llm.core.registry.models import engine_args_for, registry
from mcp_llm.core.services import Services
from mcp_llm.engine.swap import EngineSpec, SwapFailed
from mcp_llm.settings import NGRAM

log = logging.getLogger(__name__)


class Variant(BaseModel):
    """Engine settings to compare (vLLM's names); fields left out keep the serving engine's values."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=60, description="A label for tables and charts.")
    model: str | None = Field(None, description="A registered model (list_models), e.g. a quantized checkpoint.")
    max_num_seqs: int | None = Field(None, ge=1, le=1024, description="Most sequences in one engine step.")
    max_num_batched_tokens: int | None = Field(None, ge=16, le=1 << 20, description="Token budget of one step.")
    enable_prefix_caching: bool | None = Field(None, description="Reuse KV cache across shared prefixes.")
    speculative: Literal["ngram", "off"] | None = Field(
        None, description="ngram: prompt-lookup speculative decoding; off: none."
    )
    enforce_eager: bool | None = Field(None, description="Skip graph compilation (faster start).")

    def label(self) -> str:
        if self.name:
            return self.name
        fields = self.model_dump(exclude_none=True, exclude={"name"})
        return ", ".join(f"{k}={v}" for k, v in fields.items()) or "current"

    def is_current(self) -> bool:
        return not self.model_dump(exclude_none=True, exclude={"name"})

    def overrides(self) -> dict[str, Any]:
        """The engine arguments this variant changes (speculative -> speculative_config)."""
        fields = self.model_dump(exclude_none=True, exclude={"name", "model", "speculative"})
        if self.speculative == "ngram":
            fields["speculative_config"] = dict(NGRAM)
        elif self.speculative == "off":
            fields["speculative_config"] = None
        return fields


class VariantServer:
    """Serves variants one after another on the shared engine and restores the original spec at the end."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.original: EngineSpec = svc.engine.spec
        self.swaps = 0

    def spec_for(self, variant: Variant) -> EngineSpec:

        if variant.model:
            args = engine_args_for(self.svc, registry(self.svc).require(variant.model), {})
            name = variant.model
            args["served_model_name"] = name
        else:
            args, name = dict(self.original.args), self.original.name
        args |= variant.overrides()
        return EngineSpec(name, {k: v for k, v in args.items() if v is not None})

    async def use(self, variant: Variant) -> str | None:
        """Serve `variant` (None when it serves); the reason when it failed to start (the previous one serves)."""
        spec = self.original if variant.is_current() else self.spec_for(variant)
        if spec == self.svc.engine.spec:
            return None
        try:
            await self._swap(spec)
        except SwapFailed as exc:
            return str(exc)
        return None

    async def restore(self) -> None:
        """Serve the original spec again (shielded: a cancelled call still restores)."""
        if self.svc.engine.spec == self.original:
            return
        log.info("benchmark: restoring the original engine %s", self.original.name)
        await self._swap(self.original)

    async def _swap(self, spec: EngineSpec) -> None:
        self.swaps += 1
        swap = self.svc.engine.swap(spec, self.svc.settings.drain_timeout_s)
        await asyncio.shield(asyncio.ensure_future(swap))
