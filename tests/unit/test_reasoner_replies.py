"""Reading a reasoner's reply (the host's model, through sampling): `parse_action` for `solve`'s ReAct steps and
`parse_proposal` for `tune_serving`'s variants. Text around the JSON object is ignored; anything unusable is a
ValueError whose message is sent back to the reasoner, so it must say what is wrong."""

from __future__ import annotations

import json
import re

import pytest

from mcp_llm.core.schemas import Variant
from mcp_llm.server.tools.flows import ACTIONS, parse_action
from mcp_llm.server.tools.tuning import KNOBS, parse_proposal

# --- parse_action ---


def test_an_action_reply_gives_thought_action_and_input() -> None:
    reply = json.dumps({"thought": "count first", "action": "count_tokens", "input": {"text": "hello"}})
    assert parse_action(reply) == ("count first", "count_tokens", {"text": "hello"})


def test_prose_and_a_code_fence_around_the_object_are_ignored() -> None:
    reply = 'Here is my step:\n```json\n{"action": "final", "input": {"answer": "4"}}\n```\nThanks!'
    assert parse_action(reply) == (None, "final", {"answer": "4"})


@pytest.mark.parametrize("payload", [{}, {"input": None}, {"input": {}}])
def test_a_missing_or_null_input_is_an_empty_one(payload: dict) -> None:
    assert parse_action(json.dumps({"thought": "t", "action": "read_resource", **payload})) == (
        "t",
        "read_resource",
        {},
    )


@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_listed_action_is_accepted(action: str) -> None:
    assert parse_action(json.dumps({"action": action, "input": {"x": 1}}))[1] == action


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ('{"action": "fly", "input": {}}', "unknown action 'fly'; use one of " + ", ".join(ACTIONS)),
        ('{"thought": "no action"}', "unknown action None"),
        ('{"action": "generate", "input": "say hi"}', "`input` must be a JSON object"),
        ('{"action": "batch", "input": ["a", "b"]}', "`input` must be a JSON object"),
        ("I would rather not answer in JSON.", "no JSON object found"),
        ("", "no JSON object found"),
        ("} then {", "no JSON object found"),
        ("[1, 2, 3]", "no JSON object found"),
        ("{action: generate}", "Expecting property name"),  # not JSON: json's own message
        ('{"action": "final"} {"action": "final"}', "Extra data"),  # two objects are not one
    ],
)
def test_unusable_actions_say_what_is_wrong(reply: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_action(reply)


# --- parse_proposal ---


def test_a_proposal_gives_the_thought_and_the_variant() -> None:
    reply = json.dumps({"thought": "more sequences", "variant": {"max_num_seqs": 64, "speculative": "ngram"}})
    thought, variant = parse_proposal(reply)
    assert thought == "more sequences"
    assert variant == Variant(max_num_seqs=64, speculative="ngram")
    assert variant.overrides()["max_num_seqs"] == 64


@pytest.mark.parametrize(
    "reply",
    [
        '{"thought": "good enough", "stop": true}',
        '{"thought": "good enough", "stop": true, "variant": {"max_num_seqs": 0}}',  # stop wins: nothing checked
    ],
)
def test_stop_ends_the_search_without_a_variant(reply: str) -> None:
    assert parse_proposal(reply) == ("good enough", None)


@pytest.mark.parametrize("reply", ['{"thought": "as it is"}', '{"stop": false, "variant": null}', "ok: {}"])
def test_no_variant_means_the_engine_as_it_is(reply: str) -> None:
    _, variant = parse_proposal(reply)
    assert variant is not None and variant.is_current()


@pytest.mark.parametrize(
    ("variant", "problems"),
    [
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"max_num_seqs": 0}, "max_num_seqs: Input should be greater than or equal to 1"),
        ({"max_num_seqs": 2000}, "max_num_seqs: Input should be less than or equal to 1024"),
        (
            {"max_num_batched_tokens": 8, "speculative": "medusa"},
            "max_num_batched_tokens: Input should be greater than or equal to 16; "
            "speculative: Input should be 'ngram' or 'off'",
        ),
        ("fast", "variant: Input should be a valid dictionary"),  # not an object: named as the variant itself
    ],
)
def test_a_bad_variant_names_each_problem_and_the_settings(variant: object, problems: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_proposal(json.dumps({"thought": "try", "variant": variant}))
    message = str(caught.value)
    assert message.startswith(f"invalid variant ({problems}")
    assert message.endswith(f"the settings are {', '.join(KNOBS)}")


def test_a_proposal_that_is_no_json_object_is_refused() -> None:
    with pytest.raises(ValueError, match="no JSON object found"):
        parse_proposal("Let us try more sequences.")
