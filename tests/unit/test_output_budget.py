"""`output_budget`: a request may generate its `max_tokens`, cut to what the context leaves after the prompt; a
prompt that leaves no room is refused naming both counts and how much to cut."""

from __future__ import annotations

import pytest

from mcp_llm.engine.base import output_budget
from mcp_llm.errors import InputError


@pytest.mark.parametrize(
    ("prompt_tokens", "max_model_len", "max_tokens", "budget"),
    [
        (10, 2048, 16, 16),  # room to spare: max_tokens as asked
        (0, 2048, 4096, 2048),  # an empty prompt still cannot pass the context
        (2032, 2048, 16, 16),  # exactly the room left
        (2040, 2048, 16, 8),  # cut to the room left
        (2047, 2048, 16, 1),  # one token of room is still a request
    ],
)
def test_max_tokens_is_cut_to_the_room_the_context_leaves(
    prompt_tokens: int, max_model_len: int, max_tokens: int, budget: int
) -> None:
    assert output_budget(prompt_tokens, max_model_len, max_tokens) == budget


@pytest.mark.parametrize(("prompt_tokens", "shorten_by"), [(2048, 1), (2049, 2), (5000, 2953)])
def test_a_prompt_that_fills_the_context_is_refused_naming_the_counts(prompt_tokens: int, shorten_by: int) -> None:
    with pytest.raises(InputError) as caught:
        output_budget(prompt_tokens, 2048, 16)
    message = str(caught.value)
    assert f"The prompt has {prompt_tokens} tokens but the model's context is 2048 tokens" in message
    assert f"shorten the prompt by {shorten_by} tokens or more" in message
    assert "--max-model-len" in message
