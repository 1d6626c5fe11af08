"""Who may reach the Streamable HTTP endpoint: bearer tokens through the SDK's `TokenVerifier`, a refusal
to expose an unauthenticated server beyond loopback, and the SDK's DNS-rebinding (Host/Origin) guard.

Tokens come from `auth_tokens` (comma-separated, each `client:token[:role]` or a bare token) and/or
`auth_token_file` (one per line, `client token [role]` or a bare token; `#` comments). Each token names the
client it belongs to (who the request log, ownership and quotas see) and its role (`core/access`; default user).
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from mcp_llm.core.access import ROLES, Principal, role_of_scopes
from mcp_llm.settings import Settings

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


class ExposureError(ValueError):
    """The HTTP settings would expose the server to the network without authentication."""


class StaticTokens(TokenVerifier):
    """Bearer tokens known at start, each mapped to its principal (the role as an `mcp-llm:<role>` scope);
    compared in constant time."""

    def __init__(self, tokens: dict[str, Principal]) -> None:
        self._tokens = tokens

    async def verify_token(self, token: str) -> AccessToken | None:
        found = None
        for known, principal in self._tokens.items():  # no early exit: every token is compared
            if hmac.compare_digest(known.encode(), token.encode()):
                found = principal
        if found is None:
            return None
        return AccessToken(token=token, client_id=found.client, scopes=[f"mcp-llm:{found.role}"])


Entry = tuple[str | None, str | None, str | None]  # client, token, role


def _parse_entries(entries: list[Entry], source: str) -> dict[str, Principal]:
    tokens: dict[str, Principal] = {}
    for number, (client, token, role) in enumerate(entries, start=1):
        if not token or any(c.isspace() for c in token):
            raise ValueError(f"{source}: entry {number} has an empty token or one with spaces")
        if role is not None and role not in ROLES:
            raise ValueError(f"{source}: entry {number} names the role {role!r}: use one of {', '.join(ROLES)}")
        tokens[token] = Principal(client or f"client-{number}", role or "user")  # type: ignore[arg-type]
    return tokens


def _inline_entry(item: str) -> Entry:
    """`client:token[:role]` or a bare token (a token may hold colons; a last part naming a role is the role)."""
    if ":" not in item:
        return None, item, None
    client, rest = item.split(":", 1)
    token, _, role = rest.rpartition(":")
    return (client, token, role) if token and role in ROLES else (client, rest, None)


def load_tokens(settings: Settings) -> dict[str, Principal]:
    """token → principal, from `auth_tokens` and `auth_token_file` (ValueError naming the bad entry)."""
    tokens: dict[str, Principal] = {}
    if settings.auth_tokens:
        items = [item.strip() for item in settings.auth_tokens.split(",") if item.strip()]
        tokens |= _parse_entries([_inline_entry(item) for item in items], "auth_tokens")
    if settings.auth_token_file:
        tokens |= _parse_entries(_file_entries(settings.auth_token_file), str(settings.auth_token_file))
    return tokens


def _file_entries(path: Path) -> list[Entry]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"auth_token_file {path}: {exc.strerror}") from exc
    entries: list[Entry] = []
    for line in lines:
        words = line.split("#", 1)[0].split()
        if len(words) in (2, 3):
            entries.append((words[0], words[1], words[2] if len(words) == 3 else None))
        elif words:
            entries.append((None, " ".join(words), None))
    return entries


def principal(fallback: str = "local") -> Principal:
    """The current request's principal: its bearer token's client and role over authenticated HTTP; without
    authentication (stdio, loopback HTTP) the one local client, an admin, named `fallback`."""
    token = get_access_token()
    if token is None:
        return Principal(fallback, "admin")
    return Principal(token.client_id or "unknown", role_of_scopes(token.scopes) or "user")


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine."""
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, tokens: dict[str, Principal]) -> None:
    """Refuse a non-loopback bind without tokens, unless explicitly allowed (e.g. behind an authenticating proxy)."""
    if tokens or settings.oauth_issuer or is_loopback(settings.host) or settings.allow_unauthenticated_remote:
        return
    raise ExposureError(
        f"refusing to serve HTTP on {settings.host} without authentication: anyone who can reach this port "
        "could use the engine. Set --auth-tokens client:TOKEN (or --auth-token-file FILE), bind --host 127.0.0.1, "
        "or, only behind a proxy that authenticates, pass --allow-unauthenticated-remote."
    )


def verifier(settings: Settings, tokens: dict[str, Principal] | None) -> TokenVerifier | None:
    """What checks bearer tokens: the static tokens, JWTs of the configured OAuth issuer, or both in turn;
    None when neither is configured (no authentication)."""
    static = StaticTokens(tokens) if tokens else None
    if not (settings.oauth_issuer and settings.oauth_audience and settings.oauth_jwks):
        return static
    from mcp_llm.server.oauth import ChainedVerifier, JwtVerifier  # PyJWT and cryptography: only when used

    jwts = JwtVerifier(settings.oauth_issuer, settings.oauth_audience, settings.oauth_jwks)
    return ChainedVerifier([static, jwts]) if static else jwts


def auth_settings(settings: Settings) -> AuthSettings:
    """The SDK's resource-server settings, published as protected resource metadata (RFC 9728): the OAuth
    issuer and this server's audience when OAuth is on, else ourselves (static tokens, we are our own issuer).
    Our verifiers check the audience themselves (JWT `aud`; static tokens have none)."""
    if settings.oauth_issuer and settings.oauth_audience:
        issuer, resource = settings.oauth_issuer, settings.oauth_audience
    else:
        issuer = f"http://{settings.host}:{settings.port}"
        resource = f"{issuer}/mcp"
    return AuthSettings(issuer_url=issuer, resource_server_url=resource, validate_token_resource=False)


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
