"""From a completion to the answer, with vLLM's deepseek_r1 reasoning parser on the default model's real
tokenizer (no engine): each distinct text is parsed once, every sample keeps only its answer, and with
`pick: most_confident` the reasoning returned is the picked sample's."""

from __future__ import annotations

from collections import Counter

import pytest

from mcp_llm import default_model
from mcp_llm.core.answers import picked, split_reasoning
from mcp_llm.engine.parsers import Parsing
from mcp_llm.schemas import Completion, Confidence, Sample, Timing, Usage
from tests.conftest import MODELS_DIR

PARSER = "deepseek_r1"


class CountingParsing(Parsing):
    """vLLM's parsers, counting which texts they were asked to split."""

    def __init__(self, tokenizer: object) -> None:
        self._tokenizer = tokenizer
        self.parsed: Counter[str] = Counter()

    def reasoning_in(self, parser_name: str, text: str) -> tuple[str | None, str]:
        self.parsed[text] += 1
        return super().reasoning_in(parser_name, text)


@pytest.fixture
def engine() -> CountingParsing:
    from transformers import AutoTokenizer

    return CountingParsing(AutoTokenizer.from_pretrained(default_model.ensure_prepared(MODELS_DIR)))


def sample(thought: str, answer: str, mean_logprob: float) -> Sample:
    confidence = Confidence(mean_prob=0.5, min_prob=0.1, perplexity=2.0, mean_logprob=mean_logprob)
    return Sample(
        text=f"<think>{thought}</think>{answer}", finish_reason="stop", completion_tokens=9, confidence=confidence
    )


def drawn(*samples: Sample) -> Completion:
    usage = Usage(prompt_tokens=5, completion_tokens=27, total_tokens=32)
    first = samples[0]
    return Completion(
        text=first.text,
        finish_reason="stop",
        usage=usage,
        timing=Timing(total_ms=1.0, tokens_per_s=1.0),
        confidence=first.confidence,
        samples=list(samples),
    )


def test_each_text_is_parsed_once_and_every_sample_keeps_only_its_answer(engine: CountingParsing) -> None:
    completion = drawn(sample("a", "It is 5.", -0.9), sample("b", "Five.", -0.2), sample("a", "It is 5.", -0.9))
    split, reasoning = split_reasoning(engine, PARSER, completion)
    assert (reasoning, split.text) == ("a", "It is 5.")
    assert [s.text for s in split.samples] == ["It is 5.", "Five.", "It is 5."]
    assert set(engine.parsed.values()) == {1} and len(engine.parsed) == 2  # the first sample no longer twice


def test_the_reasoning_is_the_picked_samples(engine: CountingParsing) -> None:
    completion = drawn(sample("a", "It is 5.", -0.9), sample("b", "Five.", -0.2))
    split, reasoning = split_reasoning(engine, PARSER, picked(completion, "most_confident"))
    assert (reasoning, split.text) == ("b", "Five.")
    assert [s.text for s in split.samples] == ["It is 5.", "Five."]


def test_without_a_parser_nothing_is_parsed(engine: CountingParsing) -> None:
    completion = drawn(sample("a", "x", -1.0))
    assert split_reasoning(engine, None, completion) == (completion, None) and not engine.parsed
