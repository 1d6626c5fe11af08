"""Prefix-cache tenants. A shared prefix cache leaks: how fast a prompt's prefix comes back tells one client
what another sent. vLLM keys cached blocks by `cache_salt` as well, so each tenant gets its own salt: one per
authenticated HTTP client by default, shared within a `cache_groups` group, none in stdio mode (one tenant)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from mcp_llm.settings import Settings


def cache_salt_for(settings: Settings) -> Callable[[str], str | None]:
    """client name -> its cache salt (None: the shared, unsalted cache)."""
    if settings.cache_isolation == "shared" or settings.transport == "stdio":
        return lambda client: None
    groups = dict(entry.partition("=")[::2] for entry in settings.cache_groups or [])

    def salt(client: str) -> str:
        tenant = groups.get(client, f"client:{client}")
        return hashlib.sha256(f"mcp-llm tenant {tenant}".encode()).hexdigest()[:32]

    return salt
