"""Serving settings without an engine: which clients share a prefix cache (vLLM cache_salt per tenant), the
speculative-decoding shorthands, and bad combinations named with their fix. Their effect on the real engine is
tests/integration/test_serving_lab.py."""

from __future__ import annotations

import pytest

from mcp_llm.core.tenancy import cache_salt_for
from mcp_llm.settings import NGRAM, Settings


def test_stdio_is_one_tenant_and_shared_mode_turns_salts_off() -> None:
    assert cache_salt_for(Settings())("alice") is None
    assert cache_salt_for(Settings(transport="http", cache_isolation="shared"))("alice") is None
    salt = cache_salt_for(Settings(transport="http"))
    assert salt("alice") != salt("bob") and salt("alice") == salt("alice")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"speculative": "medusa"}, "ngram` or `draft:PATH"),
        ({"speculative": "ngram", "speculative_config": {"method": "ngram"}}, "not both"),
        ({"cache_groups": ["alice"]}, "client=group"),
    ],
)
def test_bad_serving_settings_name_the_fix(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**fields)


def test_speculative_shorthands() -> None:
    assert Settings(speculative="ngram").engine_args("m")["speculative_config"] == NGRAM
    draft = Settings(speculative="draft:/models/tiny").engine_args("m")["speculative_config"]
    assert draft == {"model": "/models/tiny", "num_speculative_tokens": 4}
