"""Who may reach the Streamable HTTP endpoint: bearer tokens through the SDK's `TokenVerifier`, a refusal
to expose an unauthenticated server beyond loopback, and the SDK's DNS-rebinding (Host/Origin) guard.

Tokens come from `auth_tokens` (comma-separated, each `client:token` or a bare token) and/or
`auth_token_file` (one per line, `client token` or a bare token; `#` comments). Each token names the
client it belongs to: that name is who the request log and the per-client limits see.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from mcp_llm.settings import Settings

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


class ExposureError(ValueError):
    """The HTTP settings would expose the server to the network without authentication."""


class StaticTokens(TokenVerifier):
    """Bearer tokens known at start, each mapped to its client's name; compared in constant time."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self._tokens = tokens

    async def verify_token(self, token: str) -> AccessToken | None:
        client = None
        for known, name in self._tokens.items():  # no early exit: every token is compared
            if hmac.compare_digest(known.encode(), token.encode()):
                client = name
        return AccessToken(token=token, client_id=client, scopes=[]) if client else None


def _parse_entries(entries: list[tuple[str, str | None]], source: str) -> dict[str, str]:
    tokens: dict[str, str] = {}
    for number, (client, token) in enumerate(entries, start=1):
        if not token or any(c.isspace() for c in token):
            raise ValueError(f"{source}: entry {number} has an empty token or one with spaces")
        tokens[token] = client or f"client-{number}"
    return tokens


def load_tokens(settings: Settings) -> dict[str, str]:
    """token → client name, from `auth_tokens` and `auth_token_file` (ValueError naming the bad entry)."""
    tokens: dict[str, str] = {}
    if settings.auth_tokens:
        pairs = [item.strip() for item in settings.auth_tokens.split(",") if item.strip()]
        entries = [(p.split(":", 1)[0], p.split(":", 1)[1]) if ":" in p else (None, p) for p in pairs]
        tokens |= _parse_entries(entries, "auth_tokens")
    if settings.auth_token_file:
        tokens |= _parse_entries(_file_entries(settings.auth_token_file), str(settings.auth_token_file))
    return tokens


def _file_entries(path: Path) -> list[tuple[str, str | None]]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"auth_token_file {path}: {exc.strerror}") from exc
    entries: list[tuple[str, str | None]] = []
    for line in lines:
        words = line.split("#", 1)[0].split()
        if words:
            entries.append((words[0], words[1]) if len(words) == 2 else (None, " ".join(words)))
    return entries


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine."""
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, tokens: dict[str, str]) -> None:
    """Refuse a non-loopback bind without tokens, unless explicitly allowed (e.g. behind an authenticating proxy)."""
    if tokens or is_loopback(settings.host) or settings.allow_unauthenticated_remote:
        return
    raise ExposureError(
        f"refusing to serve HTTP on {settings.host} without authentication: anyone who can reach this port "
        "could use the engine. Set --auth-tokens client:TOKEN (or --auth-token-file FILE), bind --host 127.0.0.1, "
        "or, only behind a proxy that authenticates, pass --allow-unauthenticated-remote."
    )


def auth_settings(settings: Settings) -> AuthSettings:
    """The SDK's resource-server settings for our own static tokens (we are our own issuer)."""
    base = f"http://{settings.host}:{settings.port}"
    return AuthSettings(issuer_url=base, resource_server_url=f"{base}/mcp")


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection on: Host must name this server, a browser Origin must be one we allow.

    Defaults: loopback names (any port) and the bound host; set `allowed_hosts`/`allowed_origins` for the
    names clients really use (a reverse proxy's, or the machine's DNS name when binding 0.0.0.0)."""
    hosts = [f"{name}:*" for name in LOOPBACK_NAMES] + list(LOOPBACK_NAMES)
    if settings.host not in ("0.0.0.0", "::", *LOOPBACK_NAMES):
        hosts += [settings.host, f"{settings.host}:*"]
    origins = [f"http://{name}:*" for name in LOOPBACK_NAMES]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts + list(settings.allowed_hosts or []),
        allowed_origins=origins + list(settings.allowed_origins or []),
    )
