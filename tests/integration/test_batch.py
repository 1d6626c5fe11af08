"""`batch` and the job tools, metrics resources and the request log, on the shared real engine and SQLite file."""

from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from mcp_llm.core.services import Services

pytestmark = pytest.mark.anyio


async def test_batch_returns_ordered_results_with_item_errors_and_monotonic_progress(
    client: Client, services: Services
) -> None:
    prompts = ["word " * (i + 1) for i in range(49)]
    prompts.insert(17, "word " * 3000)  # too long for the 2048-token context: an item error, not a batch error
    updates: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total))

    result = await client.call_tool(
        "batch", {"prompts": prompts, "max_tokens": 4, "temperature": 0}, progress_callback=on_progress
    )
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["job"]["status"] == "completed"
    assert out["job"]["total"] == 50 and out["job"]["completed"] == 49 and out["job"]["failed"] == 1
    results = out["results"]
    assert [r["index"] for r in results] == list(range(50))
    assert results[17]["status"] == "error" and "2048" in results[17]["error"]
    # input order: item i's prompt length is what count_tokens says of prompt i
    for i in (0, 5, 30, 49):
        counted = (await client.call_tool("count_tokens", {"prompt": prompts[i]})).structured_content["tokens"]
        assert results[i]["usage"]["prompt_tokens"] == counted, i
    assert updates, "progress notifications arrive"
    done = [p for p, _ in updates]
    assert done == sorted(done) and all(t == 50 for _, t in updates)
    stored = services.store.items(out["job"]["job_id"], limit=100)
    assert len(stored) == 50 and sum(r["status"] == "done" for r in stored) == 49


async def test_batch_of_chats_matches_generate_at_temperature_zero(client: Client) -> None:
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    out = await client.call_tool("batch", {"messages": [chat, chat], "max_tokens": 16, "temperature": 0})
    alone = await client.call_tool("generate", {"messages": chat, "max_tokens": 16, "temperature": 0})
    texts = [r["text"] for r in out.structured_content["results"]]
    assert texts == [alone.structured_content["text"]] * 2 and texts[0].strip()


async def test_wait_false_returns_a_job_to_poll_and_page(client: Client) -> None:
    prompts = [f"Item {i}:" for i in range(12)]
    started = await client.call_tool("batch", {"prompts": prompts, "max_tokens": 8, "temperature": 0, "wait": False})
    job = started.structured_content["job"]
    assert started.structured_content["results"] is None and job["total"] == 12
    job_id = job["job_id"]
    with anyio.fail_after(120):
        while (status := (await client.call_tool("job_status", {"job_id": job_id})).structured_content)[
            "status"
        ] != "completed":
            assert status["completed"] + status["failed"] + status["pending"] == 12
            await anyio.sleep(0.2)
    first = (await client.call_tool("job_results", {"job_id": job_id, "offset": 0, "limit": 5})).structured_content
    assert [i["index"] for i in first["items"]] == [0, 1, 2, 3, 4] and first["next_offset"] == 5
    last = (await client.call_tool("job_results", {"job_id": job_id, "offset": 10, "limit": 5})).structured_content
    assert [i["index"] for i in last["items"]] == [10, 11] and last["next_offset"] is None
    assert all(i["status"] == "done" and i["usage"]["completion_tokens"] > 0 for i in first["items"] + last["items"])
    resource = json.loads((await client.read_resource(f"jobs://{job_id}")).contents[0].text)
    assert resource["job"]["status"] == "completed" and len(resource["items"]) == 12
    listed = (await client.call_tool("list_jobs", {"status": "completed"})).structured_content["result"]
    assert job_id in {j["job_id"] for j in listed}


async def test_items_carry_logprobs_prompt_logprobs_and_samples_through_the_store(client: Client) -> None:
    """The figures `generate` gives, per item, stored with the job: inline, by `job_results` and in `jobs://`."""
    prompts = ["The capital of France is", "1, 2, 3,"]
    fields = ("text", "confidence", "logprobs", "prompt_logprobs", "samples")
    found = []
    for options in (
        {"max_tokens": 3, "ignore_eos": True, "seed": 5, "logprobs": 2, "n": 2},
        {"max_tokens": 1, "temperature": 0, "prompt_logprobs": 1},
    ):
        done = (await client.call_tool("batch", {"prompts": prompts} | options)).structured_content
        inline, job_id = done["results"], done["job"]["job_id"]
        paged = (await client.call_tool("job_results", {"job_id": job_id})).structured_content["items"]
        resource = json.loads((await client.read_resource(f"jobs://{job_id}")).contents[0].text)["items"]
        assert [{f: i[f] for f in fields} for i in paged] == [{f: i[f] for f in fields} for i in inline]
        # pages and jobs:// carry an optional part only where the request asked for it
        assert [{f: i.get(f) for f in fields} for i in resource] == [{f: i[f] for f in fields} for i in inline]
        found.append(inline)
    sampled, scored = found
    for item in sampled:
        assert len(item["samples"]) == 2 and len(item["logprobs"]) == 3 and item["confidence"]["mean_prob"] > 0
        assert item["prompt_logprobs"] is None
    for item in scored:
        assert item["prompt_logprobs"][0] is None and len(item["prompt_logprobs"]) == item["usage"]["prompt_tokens"]
        assert item["samples"] is None and item["logprobs"] is None
    alone = (await client.call_tool("generate", {"prompt": prompts[0], "prompt_logprobs": 1})).structured_content
    figures = [[t["logprob"] for t in out["prompt_logprobs"][1:]] for out in (scored[0], alone)]
    assert figures[0] == pytest.approx(figures[1], abs=0.01)  # in a batch of two or alone: the same figures
    plain = (await client.call_tool("batch", {"prompts": prompts[:1], "max_tokens": 2})).structured_content
    assert all(plain["results"][0][f] is None for f in fields[1:])


async def test_cancel_job_stops_engine_work(client: Client, services: Services) -> None:
    prompts = [f"Story {i}:" for i in range(16)]
    args = {"prompts": prompts, "max_tokens": 512, "ignore_eos": True, "wait": False}
    job_id = (await client.call_tool("batch", args)).structured_content["job"]["job_id"]
    with anyio.fail_after(60):
        while services.engine.num_unfinished_requests() == 0:
            await anyio.sleep(0.05)
    cancelled = (await client.call_tool("cancel_job", {"job_id": job_id})).structured_content
    assert cancelled["status"] == "cancelled" and cancelled["pending"] > 0
    with anyio.fail_after(10):
        while services.engine.num_unfinished_requests() or services.engine.stats().running:
            await anyio.sleep(0.05)
    again = await client.call_tool("cancel_job", {"job_id": job_id})
    assert again.is_error and "already cancelled" in again.content[0].text


BAD_BATCHES = [
    ({}, "exactly one of `prompts`"),
    ({"prompts": ["a"], "messages": [[{"role": "user", "content": "a"}]]}, "exactly one of `prompts`"),
    ({"prompts": []}, "batch is empty"),
    ({"prompts": ["a"] * 10_001}, "limit is 10000"),
    ({"prompts": ["a"], "temperature": 9}, "temperature"),
    ({"prompts": ["a"], "json_schema": {"type": 12}}, "not a valid JSON Schema"),
    ({"messages": [[{"role": "robot", "content": "a"}]]}, "role"),
    ({"prompts": ["a"], "wait": "soon"}, "wait"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_BATCHES)
async def test_bad_batch_is_a_tool_error(client: Client, arguments: dict, message: str) -> None:
    result = await client.call_tool("batch", arguments)
    assert result.is_error and message in result.content[0].text


@pytest.mark.parametrize("tool", ["job_status", "job_results", "cancel_job"])
async def test_unknown_job_id_says_so(client: Client, tool: str) -> None:
    result = await client.call_tool(tool, {"job_id": "no-such-job"})
    assert result.is_error and "No job 'no-such-job' on this server (list_jobs shows yours)" in result.content[0].text


async def test_job_results_bounds(client: Client) -> None:
    result = await client.call_tool("job_results", {"job_id": "x", "limit": 0})
    assert result.is_error and "limit" in result.content[0].text


async def test_metrics_move_after_traffic_and_prometheus_parses(client: Client) -> None:
    before = json.loads((await client.read_resource("metrics://engine")).contents[0].text)
    await client.call_tool("batch", {"prompts": ["Hello"] * 4, "max_tokens": 8, "temperature": 0})
    after = json.loads((await client.read_resource("metrics://engine")).contents[0].text)
    assert after["totals"]["requests"] >= before["totals"]["requests"] + 4
    assert after["totals"]["generation_tokens"] > before["totals"]["generation_tokens"]
    assert after["requests_in_window"] >= 4 and after["output_tokens_per_s"] > 0
    for series in ("ttft_ms", "tpot_ms", "e2e_ms", "queue_ms"):
        p = after["latency_ms"][series]
        assert p["p50"] is not None and p["p50"] <= p["p95"] <= p["p99"], series
    assert set(after["engine"]) == {
        "running_requests",
        "waiting_requests",
        "kv_cache_usage",
        "prefix_cache_hit_rate",
        "speculative_decoding",
    }
    text = (await client.read_resource("metrics://prometheus")).contents[0].text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert "mcp_llm_request_ttft_seconds" in families and "mcp_llm_requests" in families
    assert any(name.startswith("vllm:") for name in families), "vLLM's own series are exposed too"
    ttft_count = next(s.value for s in families["mcp_llm_request_ttft_seconds"].samples if s.name.endswith("_count"))
    assert ttft_count >= 4


async def test_request_log_has_a_row_per_generate_and_batch_item(client: Client, services: Services) -> None:
    services.store.flush()
    start = len(services.store.requests(limit=100_000))
    await client.call_tool("generate", {"prompt": "Hi", "max_tokens": 2})
    await client.call_tool("batch", {"prompts": ["a", "b", "c"], "max_tokens": 2})
    services.store.flush()
    rows = services.store.requests(limit=100_000)
    assert len(rows) == start + 4
    newest = rows[:4]
    assert sorted(r["kind"] for r in newest) == ["batch", "batch", "batch", "generate"]
    assert all(r["status"] == "ok" and r["model"] == "SmolLM2-135M-Instruct" and r["ttft_ms"] > 0 for r in newest)
    assert all(r["prompt"] is None and r["completion"] is None for r in newest), "no text unless the setting is on"


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("job_results", {"job_id": "x", "offset": -1}, "offset"),
        ("job_results", {"job_id": "x", "limit": 1001}, "limit"),
        ("job_status", {"job_id": ""}, "job_id"),
        ("list_jobs", {"status": "sleeping"}, "status"),
        ("list_jobs", {"limit": 0}, "limit"),
    ],
)
async def test_job_tool_arguments_out_of_range(client: Client, tool: str, arguments: dict, message: str) -> None:
    result = await client.call_tool(tool, arguments)
    assert result.is_error and message in result.content[0].text
