"""Who may call over HTTP, and how clients' prefix caches are kept apart."""

# No `from __future__ import annotations`: Settings (another module) resolves these fields' annotations.

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator


class AuthSettings(BaseModel):
    """Who may call over HTTP, and how clients' prefix caches are kept apart."""

    auth_tokens: str | None = Field(
        None, description="HTTP bearer tokens, comma-separated, each `client:token` (or a bare token)."
    )
    auth_token_file: Path | None = Field(None, description="HTTP bearer tokens, one per line: `client token`.")
    allow_unauthenticated_remote: bool = Field(
        False, description="Serve HTTP beyond loopback without tokens (only behind a proxy that authenticates)."
    )
    oauth_issuer: str | None = Field(
        None, description="OAuth authorization server's issuer URL: JWT access tokens' `iss` must equal it."
    )
    oauth_audience: str | None = Field(
        None, description="This server's resource URL: the `aud` JWT access tokens must carry (needed with OAuth)."
    )
    oauth_jwks: str | None = Field(None, description="The issuer's JWKS: its URL, or a local JWKS JSON file.")
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

    @field_validator("oauth_issuer", "oauth_audience", "oauth_jwks")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @model_validator(mode="after")
    def _oauth_all_or_none(self) -> Self:
        names = ("oauth_issuer", "oauth_audience", "oauth_jwks")
        missing = [name for name in names if getattr(self, name) is None]
        if missing and len(missing) < len(names):
            flags = " and ".join(f"--{name.replace('_', '-')} ({name})" for name in missing)
            raise ValueError(f"OAuth needs --oauth-issuer, --oauth-audience and --oauth-jwks together: {flags} not set")
        return self
