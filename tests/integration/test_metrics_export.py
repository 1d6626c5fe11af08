"""`metrics://prometheus` exports the serving engine's own vllm:* series, however many other AsyncLLMs this
process started after it (the embedder here): each engine keeps its series in a registry of its own, while
vLLM's default logger shares the process-global one that every new engine clears and refills."""

from __future__ import annotations

import anyio
import pytest
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from mcp_llm.core.services import Services

pytestmark = pytest.mark.anyio


async def vllm_samples(client: Client) -> list:
    text = (await client.read_resource("metrics://prometheus")).contents[0].text
    return [s for f in text_string_to_metric_families(text) if f.name.startswith("vllm:") for s in f.samples]


def total(samples: list, name: str) -> float:
    return sum(s.value for s in samples if s.name == name)


async def test_the_serving_engines_request_counter_moves_after_the_embedder_started(
    client: Client, services: Services
) -> None:
    assert services.embedder is not None, "the session starts the embedder after the generator"
    before = await vllm_samples(client)
    assert before, "vLLM's own series are exported"
    assert {s.labels.get("model_name") for s in before} - {None} == {services.engine.model_name}
    assert {s.labels["role"] for s in before} == {"generator"}
    answer = await client.call_tool("generate", {"prompt": "Hello", "max_tokens": 4, "temperature": 0})
    assert not answer.is_error, answer.content
    tokens = answer.structured_content["usage"]["completion_tokens"]
    with anyio.fail_after(10):  # vLLM records a step's stats just after handing out its outputs
        while total(after := await vllm_samples(client), "vllm:request_success_total") < (
            total(before, "vllm:request_success_total") + 1
        ):
            await anyio.sleep(0.05)
    # at least this request (an earlier test's job may still be finishing on the shared engine)
    assert total(after, "vllm:generation_tokens_total") - total(before, "vllm:generation_tokens_total") >= tokens
