"""Tokenizing many prompts at once (a batch job's next items) on the default model's real tokenizer (no engine):
every raw prompt and chat gets exactly the ids that tokenizing it alone gives, tools reach the template, and a
chat the template rejects gets its error in its own place."""

from __future__ import annotations

import pytest

from mcp_llm import default_model
from mcp_llm.engine.base import Tokenizing
from mcp_llm.errors import InputError
from mcp_llm.schemas import ChatMessage
from tests.conftest import MODELS_DIR

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def tokens() -> Tokenizing:
    from transformers import AutoTokenizer

    found = Tokenizing()
    found._tokenizer = AutoTokenizer.from_pretrained(default_model.ensure_prepared(MODELS_DIR))
    return found


def chat(*turns: tuple[str, str]) -> list[ChatMessage]:
    return [ChatMessage(role=role, content=text) for role, text in turns]


def test_many_at_once_equals_one_by_one(tokens: Tokenizing) -> None:
    inputs: list = [
        "Once upon a time",
        chat(("user", "What is the capital of France?")),
        chat(("system", "Be terse."), ("user", "Hi  there\n\nfriend "), ("assistant", "Hello."), ("user", "Again")),
        "  leading spaces and ünïcödé ✓",
        chat(("user", "x" * 3000)),
    ]
    many = tokens.tokenize_many(inputs)
    alone = [tokens.tokenize_text(v) if isinstance(v, str) else tokens.tokenize_chat(v) for v in inputs]
    assert many == alone
    assert tokens.tokenize_many([chat(("user", "Weather?"))], [WEATHER]) == [
        tokens.tokenize_chat(chat(("user", "Weather?")), [WEATHER])
    ]


def test_a_rejected_chat_gets_its_error_in_its_place(tokens: Tokenizing, monkeypatch: pytest.MonkeyPatch) -> None:
    """As jinja raises for a turn order a template does not allow (here: any chat that mentions REJECT)."""
    render = tokens._tokenizer.apply_chat_template

    def strict(turns: list[dict], **kwargs: object) -> str:
        if any("REJECT" in turn["content"] for turn in turns):
            raise ValueError("Conversation roles must alternate user/assistant/user/assistant")
        return render(turns, **kwargs)

    fine, bad = chat(("user", "Hi")), chat(("user", "REJECT me"))
    expected = [tokens.tokenize_chat(fine), tokens.tokenize_text("text")]
    monkeypatch.setattr(tokens._tokenizer, "apply_chat_template", strict)
    out = tokens.tokenize_many([fine, bad, "text"])
    assert [out[0], out[2]] == expected
    assert isinstance(out[1], InputError) and "roles must alternate" in str(out[1])


def test_token_ids_reach_vllm_as_its_rendered_input_unless_a_grammar_must_compile() -> None:
    """vLLM 0.32 checks a rendered input on the calling loop (no thread hop); a structured-output request keeps the
    prompt dict, whose check (the grammar's compilation) vLLM runs on its renderer's thread."""
    from vllm.sampling_params import SamplingParams, StructuredOutputsParams

    from mcp_llm.engine.local import _token_prompt

    plain = _token_prompt([1, 2, 3], "salt", SamplingParams(max_tokens=1))
    assert plain == {"type": "token", "prompt_token_ids": [1, 2, 3], "cache_salt": "salt"}
    assert _token_prompt([1, 2], None, SamplingParams()) == {"type": "token", "prompt_token_ids": [1, 2]}
    constrained = SamplingParams(structured_outputs=StructuredOutputsParams(regex="[ab]+"))
    assert _token_prompt([1, 2], "salt", constrained) == {"prompt_token_ids": [1, 2], "cache_salt": "salt"}
