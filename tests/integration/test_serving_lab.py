"""Serving levers on the real engine: prefix-cache isolation between tenants (vLLM cache_salt, read from
vLLM's own prefix-cache hit counters) and speculative decoding (ngram) with its acceptance in the metrics.
The settings alone are tests/unit/test_serving_settings.py."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from mcp_llm.core.inference import Recorder
from mcp_llm.core.services import Services
from mcp_llm.core.tenancy import cache_salt_for
from mcp_llm.engine.local import LocalEngine
from mcp_llm.schemas import SamplingOptions
from mcp_llm.settings import Settings
from tests.conftest import MODELS_DIR

pytestmark = pytest.mark.anyio
COPY_TASK = (
    "Copy this list exactly, line by line:\n"
    + "\n".join(f"item {i}: the quick brown fox jumps over the lazy dog {i}" for i in range(12))
    + "\nCopy:\n"
)


async def cached_tokens(services: Services, recorder: Recorder, ids: list[int], client: str) -> int:
    """How many prompt tokens vLLM served from its prefix cache for this request (its hit counter's delta)."""
    engine = services.engine
    while engine.num_unfinished_requests():
        await asyncio.sleep(0.05)
    before = engine.stats().prefix_cache_hits
    await recorder.complete(ids, SamplingOptions(max_tokens=1), client=client, kind="generate")
    await asyncio.sleep(0.3)  # the stats of the request's last step arrive just after its output
    return engine.stats().prefix_cache_hits - before


async def test_one_tenant_reuses_its_prefix_cache_and_another_does_not(services: Services) -> None:
    settings = Settings(transport="http", cache_groups=["carol=research", "dave=research"])
    recorder = Recorder(services.engine, services.metrics, services.store, salt_for=cache_salt_for(settings))
    shared = f"System prompt {uuid.uuid4().hex}. " + "You answer briefly and precisely. " * 100
    ids = services.engine.tokenize_text(shared + "Question: what is 2 + 2?")
    assert len(ids) > 600
    assert await cached_tokens(services, recorder, ids, "alice") == 0  # first sight of this prefix
    assert await cached_tokens(services, recorder, ids, "alice") >= 512  # same tenant: reused
    assert await cached_tokens(services, recorder, ids, "bob") == 0  # another tenant: nothing to time
    await cached_tokens(services, recorder, ids, "carol")
    assert await cached_tokens(services, recorder, ids, "dave") >= 512  # one group shares its cache


@pytest.mark.slow
async def test_ngram_speculation_keeps_greedy_output_and_reports_acceptance(services: Services) -> None:
    from mcp_llm import default_model

    model = str(default_model.ensure_prepared(MODELS_DIR))
    ids = services.engine.tokenize_text(COPY_TASK)
    greedy = SamplingOptions(max_tokens=120, temperature=0)
    plain = await services.engine.generate(ids, greedy, uuid.uuid4().hex)
    args = Settings(speculative="ngram").engine_args(model) | {"max_model_len": 2048}
    engine = await LocalEngine.start(args, "speculative")
    try:
        fast = await engine.generate(ids, greedy, uuid.uuid4().hex)
        await asyncio.sleep(0.3)
        spec = engine.stats().speculative()
        config = engine.config().speculative
    finally:
        await engine.shutdown(5)
    assert fast.text == plain.text
    assert config == {"method": "ngram", "num_speculative_tokens": 4}
    assert spec is not None and spec["accepted_tokens"] > 0 and spec["tokens_per_step"] > 1.5, spec
