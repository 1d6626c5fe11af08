"""`generate`, `count_tokens` and `model://config` against the real engine through an in-process client."""

from __future__ import annotations

import json

import pytest
from mcp import Client

pytestmark = pytest.mark.anyio

CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


async def call(client: Client, name: str, **arguments):
    return await client.call_tool(name, arguments)


async def test_chat_answers_paris_at_temperature_zero(client: Client) -> None:
    result = await call(client, "generate", messages=CAPITAL, temperature=0, max_tokens=24)
    assert not result.is_error, result.content
    out = result.structured_content
    assert "Paris" in out["text"]
    assert out["finish_reason"] in {"stop", "length"}
    assert out["usage"]["prompt_tokens"] > 5
    assert out["usage"]["completion_tokens"] == out["usage"]["total_tokens"] - out["usage"]["prompt_tokens"]
    assert 0 < out["timing"]["ttft_ms"] <= out["timing"]["total_ms"]
    assert out["timing"]["tokens_per_s"] > 0
    assert out["model"] == "SmolLM2-135M-Instruct"


async def test_raw_prompt_and_stop_and_max_tokens(client: Client) -> None:
    result = await call(client, "generate", prompt="1, 2, 3, 4,", temperature=0, max_tokens=5)
    out = result.structured_content
    assert out["usage"]["completion_tokens"] <= 5
    assert out["finish_reason"] == "length"
    stopped = await call(client, "generate", prompt="1, 2, 3, 4,", temperature=0, max_tokens=40, stop=["7"])
    assert stopped.structured_content["finish_reason"] == "stop"
    assert "7" not in stopped.structured_content["text"]


async def test_seeded_sampling_is_reproducible(client: Client) -> None:
    args = {"prompt": "Once upon a time", "temperature": 1.0, "seed": 7, "max_tokens": 16}
    first = await call(client, "generate", **args)
    second = await call(client, "generate", **args)
    assert first.structured_content["text"] == second.structured_content["text"]


async def test_json_schema_output_validates(client: Client) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
    }
    result = await call(client, "generate", messages=CAPITAL, temperature=0, max_tokens=64, json_schema=schema)
    assert not result.is_error, result.content
    out = result.structured_content
    parsed = json.loads(out["text"])
    assert set(parsed) >= {"city", "country"} and all(isinstance(v, str) for v in parsed.values())
    assert out["parsed"] == parsed


async def test_count_tokens_matches_generate_usage(client: Client) -> None:
    counted = (await call(client, "count_tokens", messages=CAPITAL)).structured_content
    used = (await call(client, "generate", messages=CAPITAL, temperature=0, max_tokens=1)).structured_content
    assert counted["tokens"] == used["usage"]["prompt_tokens"]
    assert counted["max_model_len"] == 2048
    assert counted["remaining"] == 2048 - counted["tokens"] and counted["fits"]
    long = (await call(client, "count_tokens", prompt="word " * 3000)).structured_content
    assert long["tokens"] > 2048 and not long["fits"] and long["remaining"] == 0


BAD_INPUTS = [
    ({"prompt": "hi", "messages": CAPITAL}, "exactly one of `prompt`"),
    ({}, "exactly one of `prompt`"),
    ({"messages": []}, "`messages` is empty"),
    ({"prompt": ""}, "`prompt` is empty"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "role"),
    ({"messages": [{"content": "hi"}]}, "role"),
    ({"prompt": "hi", "temperature": 3}, "temperature"),
    ({"prompt": "hi", "temperature": -0.1}, "temperature"),
    ({"prompt": "hi", "top_p": 0}, "top_p"),
    ({"prompt": "hi", "top_k": 0}, "top_k"),
    ({"prompt": "hi", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "hi", "max_tokens": 10**6}, "max_tokens"),
    ({"prompt": "hi", "presence_penalty": 5}, "presence_penalty"),
    ({"prompt": "hi", "frequency_penalty": -3}, "frequency_penalty"),
    ({"prompt": "hi", "seed": -1}, "seed"),
    ({"prompt": "hi", "stop": [""]}, "at least 1 character"),
    ({"prompt": "hi", "stop": "x"}, "stop"),
    ({"prompt": "hi", "json_schema": {"type": "bogus"}}, "not a valid JSON Schema"),
    ({"prompt": "hi", "json_schema": "nope"}, "json_schema"),
    ({"prompt": "hi", "temperatur": 0}, "temperatur"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_INPUTS)
async def test_bad_input_is_a_tool_error_that_says_what_to_fix(client: Client, arguments: dict, message: str) -> None:
    result = await call(client, "generate", **arguments)
    assert result.is_error
    assert message in result.content[0].text


async def test_too_long_prompt_names_both_counts_and_server_keeps_serving(client: Client) -> None:
    result = await call(client, "generate", prompt="word " * 3000, max_tokens=8)
    assert result.is_error
    text = result.content[0].text
    assert "3001 tokens" in text or "tokens but the model's context is 2048 tokens" in text
    assert "2048" in text
    again = await call(client, "generate", messages=CAPITAL, temperature=0, max_tokens=16)
    assert not again.is_error and "Paris" in again.structured_content["text"]


async def test_max_tokens_is_cut_to_what_the_context_leaves(client: Client) -> None:
    prompt_tokens = (await call(client, "count_tokens", prompt="word " * 2030)).structured_content["tokens"]
    result = await call(client, "generate", prompt="word " * 2030, max_tokens=500, ignore_eos=True)
    assert not result.is_error, result.content
    assert result.structured_content["usage"]["completion_tokens"] == 2048 - prompt_tokens
    assert result.structured_content["finish_reason"] == "length"


async def test_tool_schemas_document_every_field_and_bound(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert {"generate", "count_tokens"} <= set(tools)
    props = tools["generate"].input_schema["properties"]
    for name in (
        "prompt",
        "messages",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "json_schema",
    ):
        assert name in props, name
    assert props["temperature"]["maximum"] == 2.0 and props["temperature"]["minimum"] == 0.0
    assert props["max_tokens"]["minimum"] == 1
    assert "description" in props["temperature"]
    output = tools["generate"].output_schema
    assert {"text", "finish_reason", "usage", "timing", "model"} <= set(output["properties"])
    assert "Generate text" in tools["generate"].description


async def test_model_config_resource(client: Client) -> None:
    result = await client.read_resource("model://config")
    config = json.loads(result.contents[0].text)
    assert config["model"] == "SmolLM2-135M-Instruct"
    assert config["max_model_len"] == 2048
    assert config["device"] == "cpu"
    assert config["kv_cache_tokens"] > 0 and config["max_num_seqs"] > 0
    assert config["vllm_version"] and config["state"] == "ready"
    assert "dtype" in config and "enable_prefix_caching" in config


async def test_concurrent_clients_share_one_engine(app) -> None:
    import anyio

    texts: list[str] = []

    async def one() -> None:
        async with Client(app) as c:
            r = await call(c, "generate", messages=CAPITAL, temperature=0, max_tokens=16)
            texts.append(r.structured_content["text"])

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(one)
    assert len(texts) == 4 and len(set(texts)) == 1 and "Paris" in texts[0]


async def test_legacy_jsonrpc_framing_in_memory(app) -> None:
    async with Client(app, mode="legacy") as c:
        r = await call(c, "generate", messages=CAPITAL, temperature=0, max_tokens=16)
    assert "Paris" in r.structured_content["text"]
