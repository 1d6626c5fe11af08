"""Who may call over HTTP, and how clients' prefix caches are kept apart."""

# No `from __future__ import annotations`: Settings (another module) resolves these fields' annotations.

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator


class AuthSettings(BaseModel):
    """Who may call over HTTP, and how clients' prefix caches are kept apart."""

    auth_tokens: str | None = Field(
        None, description="HTTP bearer tokens, comma-separated, each `client:token` (or a bare token)."
    )
    auth_token_file: Path | None = Field(None, description="HTTP bearer tokens, one per line: `client token`.")
    allow_unauthenticated_remote: bool = Field(
        False, description="Serve HTTP beyond loopback without tokens (only behind a proxy that authenticates)."
    )
    cache_isolation: Literal["client", "shared"] = Field(
        "client",
        description="Prefix cache per HTTP client (vLLM cache_salt: one tenant cannot time another's prompts) "
        "or shared by all; stdio serves one tenant.",
    )
    cache_groups: list[str] | None = Field(
        None, description="`client=group` entries: clients of one group share their prefix cache."
    )

    @field_validator("cache_groups")
    @classmethod
    def _groups_are_pairs(cls, entries: list[str] | None) -> list[str] | None:
        for entry in entries or []:
            client, _, group = entry.partition("=")
            if not client or not group:
                raise ValueError(f"cache_groups entry {entry!r} must be `client=group`")
        return entries or None
