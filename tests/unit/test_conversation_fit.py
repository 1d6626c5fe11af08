"""How a kept thread is fitted to the context (pure logic; one token per word stands in for the tokenizer):
whole when it fits, else cut from its oldest turns with the system turn kept and a note, refused when even the
newest turn leaves no room to answer."""

from __future__ import annotations

import pytest

from mcp_llm.core.conversations import fit
from mcp_llm.errors import InputError
from mcp_llm.schemas import ChatMessage


def words(turns: list[ChatMessage]) -> list[int]:
    return [0] * sum(len(t.content.split()) for t in turns)


def thread(*sizes: int, system: bool = True) -> list[ChatMessage]:
    turns = [ChatMessage(role="system", content="be brief")] if system else []
    roles = ("user", "assistant")
    return turns + [ChatMessage(role=roles[i % 2], content="w " * size) for i, size in enumerate(sizes)]


def test_a_thread_that_fits_goes_whole() -> None:
    fitted = fit(words, thread(10, 10, 10), max_model_len=100, max_tokens=20)
    assert len(fitted.token_ids) == 32 and fitted.dropped == 0 and not fitted.notes


def test_the_oldest_exchanges_go_first_and_the_system_turn_stays() -> None:
    fitted = fit(words, thread(40, 40, 10), max_model_len=100, max_tokens=20)  # 92 + 20 > 100: one exchange goes
    assert fitted.dropped == 2 and len(fitted.token_ids) == 2 + 10
    assert "4 turns" in fitted.notes[0] and "2 oldest turns were left out" in fitted.notes[0]


def test_the_answer_keeps_a_quarter_of_the_context_when_max_tokens_is_larger() -> None:
    assert fit(words, thread(70, system=False), max_model_len=100, max_tokens=500).dropped == 0  # 70 + 25 fits


def test_a_newest_turn_too_long_alone_is_refused() -> None:
    with pytest.raises(InputError, match="does not fit the context"):
        fit(words, thread(10, 10, 95), max_model_len=100, max_tokens=8)
