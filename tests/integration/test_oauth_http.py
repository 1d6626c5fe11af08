"""OAuth 2.1 resource server over real HTTP on the shared engine: JWT access tokens signed with a key made here
(the issuer's JWKS as a file) are accepted with the client and role they carry, refused with 401 when expired,
for another audience or tampered, and the protected resource metadata (RFC 9728) names the issuer."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from mcp_llm.core.services import Services
from tests.support.inproc import client_as, http_app

pytestmark = pytest.mark.anyio

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ISSUER, AUDIENCE = "https://auth.example.test", "https://llm.example.test/mcp"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}


def token(scope: str = "mcp-llm:user", **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "agent-7", "scope": scope, "iat": now, "exp": now + 600}
    return jwt.encode(claims | changes, KEY, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture(scope="module")
async def url(services: Services, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    jwks = tmp_path_factory.mktemp("oauth") / "jwks.json"
    jwks.write_text(json.dumps({"keys": [RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True) | {"kid": "k1"}]}))
    oauth = {"oauth_issuer": ISSUER, "oauth_audience": AUDIENCE, "oauth_jwks": str(jwks)}
    async with http_app(services, {}, **oauth) as url:
        yield url


async def status_with(url: str, bearer: str) -> int:
    """The HTTP status of an `initialize` with this bearer token (async: the server runs in this event loop)."""
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {bearer}"}
    async with httpx.AsyncClient(timeout=30) as http:
        return (await http.post(url, json=INITIALIZE, headers=headers)).status_code


async def test_a_valid_jwt_carries_its_client_and_role(url: str) -> None:
    async with client_as(url, token()) as client:
        generated = await client.call_tool("generate", {"prompt": "Hi", "max_tokens": 2})
        assert not generated.is_error
        refused = await client.call_tool("load_model", {"name": "x", "confirm": True})
        assert refused.is_error and "client `agent-7` has the user role" in refused.content[0].text
        mine = json.loads((await client.read_resource("usage://me")).contents[0].text)
        assert (mine["client"], mine["role"]) == ("agent-7", "user") and mine["last_30_days"]["requests"] >= 1
    async with client_as(url, token("openid mcp-llm:admin", sub="ops-1")) as admin:
        assert not (await admin.call_tool("usage", {})).is_error


@pytest.mark.parametrize(
    "bad",
    [
        token(exp=int(time.time()) - 120),
        token(aud="https://other.example.test/mcp"),
        token(iss="https://evil.example.test"),
        token(scope="openid"),
        token()[:-4] + ("AAAA" if not token().endswith("AAAA") else "BBBB"),
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "no-role-scope", "tampered"],
)
async def test_a_bad_jwt_gets_401(url: str, bad: str) -> None:
    assert await status_with(url, bad) == 401
    assert await status_with(url, token()) == 200


async def test_the_protected_resource_metadata_names_the_issuer(url: str) -> None:
    base = url.removesuffix("/mcp")
    async with httpx.AsyncClient(timeout=30) as http:
        metadata = (await http.get(f"{base}/.well-known/oauth-protected-resource/mcp")).json()
        challenge = (await http.post(url, json=INITIALIZE, headers={"Accept": "application/json"})).headers
    assert metadata["resource"] == AUDIENCE and [s.rstrip("/") for s in metadata["authorization_servers"]] == [ISSUER]
    assert "resource_metadata=" in challenge.get("www-authenticate", "")
