"""Engine variants: a named set of engine settings that `benchmark` and `tune_serving` serve for a while
through the hot swap, then roll back from, whatever happened in between."""

from __future__ import annotations

import asyncio
import logging

from mcp_llm.core.registry.models import engine_args_for, registry
from mcp_llm.core.schemas import Variant
from mcp_llm.core.services import Services
from mcp_llm.engine.swap import EngineSpec, SwapFailed

log = logging.getLogger(__name__)


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
