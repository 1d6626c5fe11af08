"""Conversations on the real engine and a real SQLite file: `chat` keeps the thread, the prefix cache serves the
earlier turns (cached tokens rise turn by turn), conversations://{id} shows it, fork copies, delete removes, a
thread past the context is cut from its oldest turns with a note, and another client's id is unknown."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from mcp_llm.core.access import Principal
from mcp_llm.core.conversations import Conversations
from mcp_llm.core.services import Services
from mcp_llm.errors import InputError

pytestmark = pytest.mark.anyio


async def say(client: Client, message: str, **arguments) -> dict:
    result = await client.call_tool("chat", {"message": message, "temperature": 0, "max_tokens": 12} | arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


SYSTEM = "You are a terse assistant. " + "Answer in a few words, plainly, without lists. " * 30  # > 2 KV blocks


async def test_four_turns_reuse_the_cache_and_the_thread_is_kept(client: Client) -> None:
    first = await say(client, "Hello! My name is Ada.", system=SYSTEM)
    thread = first["conversation_id"]
    turns = [first]
    for message in ("What is my name? " * 20, "Name a colour. " * 30, "Name a fruit. " * 30):
        turns.append(await say(client, message, conversation_id=thread))
    assert [t["turn"] for t in turns] == [2, 4, 6, 8]  # system 0, user 1, assistant 2, ...
    cached = [t["usage"]["cached_tokens"] for t in turns]
    prompts = [t["usage"]["prompt_tokens"] for t in turns]
    assert prompts == sorted(prompts) and cached[1:] == sorted(cached[1:]) and cached[-1] > cached[1] > 0, cached
    shown = json.loads((await client.read_resource(f"conversations://{thread}")).contents[0].text)
    roles = [t["role"] for t in shown["turns"]]
    assert roles == ["system"] + ["user", "assistant"] * 4
    assert shown["turns"][-1]["content"] == turns[-1]["text"] and shown["turns"][-1]["cached_tokens"] == cached[-1]
    forked = (await client.call_tool("fork_conversation", {"conversation_id": thread, "turns": 3})).structured_content
    assert forked["turns"] == 3 and forked["forked_from"] == thread
    branch = await say(client, "Name a city.", conversation_id=forked["conversation_id"])
    assert branch["turn"] == 4
    deleted = (await client.call_tool("delete_conversation", {"conversation_id": thread})).structured_content
    assert deleted["turns"] == 9
    gone = await client.call_tool("chat", {"message": "Still there?", "conversation_id": thread})
    assert gone.is_error and f"No conversation {thread!r}" in gone.content[0].text


async def test_a_thread_past_the_context_is_cut_from_its_oldest_turns_with_a_note(
    client: Client, services: Services
) -> None:
    long = "word " * int(services.engine.max_model_len * 0.4)  # two fit the context, three do not
    first = await say(client, long, max_tokens=4)
    thread = first["conversation_id"]
    second = await say(client, long, conversation_id=thread, max_tokens=4)
    third = await say(client, long, conversation_id=thread, max_tokens=4)
    assert first["dropped_turns"] == second["dropped_turns"] == 0
    assert third["dropped_turns"] == 2 and "2 oldest turns were left out" in third["notes"][0], third
    assert second["usage"]["prompt_tokens"] + third["usage"]["prompt_tokens"] > services.engine.max_model_len
    assert third["usage"]["prompt_tokens"] + 4 <= services.engine.max_model_len  # the cut thread fits


async def test_conversations_are_their_clients(services: Services) -> None:
    """Ownership on the real database: another user's id is unknown, word for word; an admin sees it."""
    kept = Conversations(services.store)
    mine = kept.create("alice-conv")
    alice, bob = Principal("alice-conv", "user"), Principal("bob-conv", "user")
    kept.get(mine, alice)
    for act in (lambda: kept.get(mine, bob), lambda: kept.fork(mine, bob), lambda: kept.delete(mine, bob)):
        with pytest.raises(InputError, match=f"No conversation {mine!r}"):
            act()
    assert kept.get(mine, Principal("root", "admin"))["client"] == "alice-conv"


async def test_bad_chat_inputs_say_what_to_fix(client: Client) -> None:
    first = await say(client, "Hi")
    again = {"message": "x", "conversation_id": first["conversation_id"]}
    cases = [
        ({"message": ""}, "`message` is empty"),
        ({"message": "x", "n": 2}, "one answer per turn"),
        (again | {"system": "Be brief."}, "when a conversation starts"),
        ({"message": "x", "conversation_id": "nope"}, "No conversation 'nope'"),
    ]
    for arguments, says in cases:
        result = await client.call_tool("chat", arguments)
        assert result.is_error and says in result.content[0].text, (arguments, result.content[0].text)
    fork = await client.call_tool("fork_conversation", {"conversation_id": first["conversation_id"], "turns": 99})
    assert fork.is_error and "between 0 and 2" in fork.content[0].text
