"""`embed` against the real pooling engine (all-MiniLM-L6-v2, bundled): similarity, dimensions, batches, errors."""

from __future__ import annotations

import math

import pytest
from mcp import Client

from mcp_llm.core.services import Services

pytestmark = pytest.mark.anyio

SENTENCES = [
    "The cat sat on the mat.",
    "A kitten was sitting on the rug.",
    "Quarterly revenue grew by twelve percent.",
]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


async def embed(client: Client, **arguments) -> dict:
    result = await client.call_tool("embed", arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def test_similar_sentences_are_closer_than_unrelated_ones(client: Client) -> None:
    body = await embed(client, texts=SENTENCES)
    assert body["model"] == "all-MiniLM-L6-v2" and body["dimension"] == 384
    cat, kitten, revenue = body["vectors"]
    assert all(len(v) == 384 for v in body["vectors"])
    assert cosine(cat, kitten) > 0.5 > cosine(cat, revenue)
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-3 for v in body["vectors"]), "unit length"
    assert body["token_counts"][0] == 9 and body["total_tokens"] == sum(body["token_counts"])


async def test_many_texts_in_one_call_match_one_at_a_time(client: Client) -> None:
    texts = [f"Sentence number {i} about {topic}." for i, topic in enumerate(["rain", "music", "code"] * 12)]
    together = (await embed(client, texts=texts))["vectors"]
    alone = (await embed(client, texts=[texts[7]]))["vectors"][0]
    assert len(together) == 36 and cosine(together[7], alone) > 0.999


async def test_normalize_false_returns_raw_vectors(client: Client) -> None:
    raw = (await embed(client, texts=SENTENCES[:1], normalize=False))["vectors"][0]
    unit = (await embed(client, texts=SENTENCES[:1]))["vectors"][0]
    assert abs(math.sqrt(sum(x * x for x in raw)) - 1) > 0.01 and cosine(raw, unit) > 0.999


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"texts": []}, "texts"),
        ({"texts": ["fine", "   "]}, "texts[1] is empty"),
        ({"texts": ["x"] * 257}, "more than one call takes (256)"),
        ({"texts": ["ok", "word " * 2000]}, "texts[1] has"),
        ({"texts": "not a list"}, "texts"),
    ],
)
async def test_bad_inputs_are_tool_errors(client: Client, arguments: dict, expected: str) -> None:
    result = await client.call_tool("embed", arguments)
    assert result.is_error and expected in result.content[0].text


async def test_without_an_embedding_model_embed_says_how_to_turn_it_on(
    client: Client, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "embedder", None)
    result = await client.call_tool("embed", {"texts": ["hello"]})
    assert result.is_error and "--embedding-model default" in result.content[0].text
