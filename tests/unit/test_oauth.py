"""JWT access tokens (OAuth 2.1 resource server): `JwtVerifier` accepts a token signed by a key of the issuer's
JWKS, unexpired, for our issuer and audience, carrying a role scope; anything else is None. `ChainedVerifier`
tries verifiers in turn. The OAuth settings go together: one without the others stops the start, naming them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcp.server.auth.provider import AccessToken, TokenVerifier

from mcp_llm.core.access import ROLE_SCOPES, role_of_scopes
from mcp_llm.server.oauth import ChainedVerifier, JwtVerifier
from mcp_llm.settings import Settings

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.example.com"
AUDIENCE = "https://llm.example.com/mcp"
KID = "key-1"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks(tmp_path: Path) -> Path:
    jwk = RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True) | {"kid": KID, "use": "sig"}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


@pytest.fixture
def verifier(jwks: Path) -> JwtVerifier:
    return JwtVerifier(ISSUER, AUDIENCE, str(jwks))


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-42", "client_id": "alice-app", "iat": now, "exp": now + 600}
    base["scope"] = "openid mcp-llm:user"
    return {k: v for k, v in (base | changes).items() if v is not None}


def sign(payload: dict[str, Any], key: Any = KEY, kid: str | None = KID, algorithm: str = "RS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


async def test_a_valid_token_names_its_client_scopes_and_role(verifier: JwtVerifier) -> None:
    signed = claims()
    token = sign(signed)
    access = await verifier.verify_token(token)
    assert access is not None
    assert (access.token, access.client_id, access.subject) == (token, "alice-app", "user-42")
    assert access.scopes == ["openid", "mcp-llm:user"] and role_of_scopes(access.scopes) == "user"
    assert access.resource == AUDIENCE and access.expires_at == signed["exp"]


async def test_the_client_is_client_id_else_azp_else_sub_and_scp_lists_scopes(verifier: JwtVerifier) -> None:
    admin = await verifier.verify_token(sign(claims(client_id=None, azp="ci-bot", scope="mcp-llm:admin")))
    assert admin is not None and admin.client_id == "ci-bot" and role_of_scopes(admin.scopes) == "admin"
    viewer = await verifier.verify_token(sign(claims(client_id=None, scope=None, scp=["mcp-llm:viewer"])))
    assert viewer is not None and viewer.client_id == "user-42" and viewer.scopes == ["mcp-llm:viewer"]


async def test_one_key_and_no_kid_uses_that_key(verifier: JwtVerifier) -> None:
    assert await verifier.verify_token(sign(claims(), kid=None)) is not None


def test_the_highest_role_wins_and_no_role_scope_is_none() -> None:
    assert role_of_scopes(["mcp-llm:viewer", "mcp-llm:admin", "mcp-llm:user"]) == "admin"
    assert role_of_scopes(["mcp-llm:viewer", "mcp-llm:user"]) == "user"
    assert role_of_scopes(["openid", "mcp-llm:root"]) is None
    assert set(ROLE_SCOPES.values()) == {"admin", "user", "viewer"}


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    flipped = ("A" if signature[10] != "A" else "B").join([signature[:10], signature[11:]])
    return ".".join([header, payload, flipped])


def part(data: dict[str, Any]) -> str:
    """One base64url JSON segment of a JWT."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any]) -> str:
    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': KID})}.{part(payload)}."


def hs256_with_public_key(payload: dict[str, Any]) -> str:
    """The algorithm-confusion attack: HMAC keyed with the public key's PEM text (signed by hand: PyJWT's
    `jwt.encode` refuses a PEM key for HS256)."""
    pem = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    message = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': KID})}.{part(payload)}"
    mac = hmac.new(pem, message.encode(), hashlib.sha256).digest()
    return f"{message}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: sign(claims(exp=int(time.time()) - 3600)), id="expired"),
        pytest.param(lambda: sign(claims(iss="https://evil.example.com")), id="wrong-issuer"),
        pytest.param(lambda: sign(claims(aud="https://other.example.com/mcp")), id="wrong-audience"),
        pytest.param(lambda: sign(claims(scope="openid profile")), id="no-role-scope"),
        pytest.param(lambda: sign(claims(exp=None)), id="no-exp"),
        pytest.param(lambda: sign(claims(aud=None)), id="no-aud"),
        pytest.param(lambda: tampered(sign(claims())), id="tampered-signature"),
        pytest.param(lambda: sign(claims(), key=OTHER_KEY), id="other-key"),
        pytest.param(lambda: unsigned(claims()), id="alg-none"),
        pytest.param(lambda: hs256_with_public_key(claims()), id="hs256-public-key"),
        pytest.param(lambda: sign(claims(), kid="key-2"), id="unknown-kid"),
        pytest.param(lambda: "not.a.jwt", id="malformed"),
        pytest.param(lambda: "tok-alice", id="static-token"),
    ],
)
async def test_a_bad_token_is_refused(verifier: JwtVerifier, token: Any) -> None:
    assert await verifier.verify_token(token()) is None


async def test_the_leeway_accepts_a_token_just_expired(jwks: Path) -> None:
    just_expired = sign(claims(exp=int(time.time()) - 5))
    assert await JwtVerifier(ISSUER, AUDIENCE, str(jwks), leeway_s=30).verify_token(just_expired) is not None
    assert await JwtVerifier(ISSUER, AUDIENCE, str(jwks), leeway_s=0).verify_token(just_expired) is None


class OneToken(TokenVerifier):
    """A stand-in for the static tokens: accepts one token."""

    def __init__(self, token: str, client: str) -> None:
        self.token, self.client = token, client

    async def verify_token(self, token: str) -> AccessToken | None:
        return AccessToken(token=token, client_id=self.client, scopes=[]) if token == self.token else None


async def test_the_chain_falls_through_to_the_next_verifier(verifier: JwtVerifier) -> None:
    chain = ChainedVerifier([OneToken("tok-alice", "alice"), verifier])
    static = await chain.verify_token("tok-alice")
    assert static is not None and static.client_id == "alice"
    jwt_access = await chain.verify_token(sign(claims()))
    assert jwt_access is not None and jwt_access.client_id == "alice-app"
    assert await chain.verify_token("tok-nobody") is None


@pytest.fixture
def jwks_url(jwks: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[str]]]:
    """The JWKS served on loopback (the issuer's endpoint), with the paths requested."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    body, requests = jwks.read_bytes(), []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", requests
    finally:
        server.shutdown()
        server.server_close()


async def test_a_jwks_url_is_fetched_once_and_cached(jwks_url: tuple[str, list[str]]) -> None:
    url, requests = jwks_url
    verifier = JwtVerifier(ISSUER, AUDIENCE, url)
    assert requests == []  # nothing fetched before the first token
    for _ in range(3):
        access = await verifier.verify_token(sign(claims(scope="mcp-llm:admin")))
        assert access is not None and role_of_scopes(access.scopes) == "admin"
    assert await verifier.verify_token(sign(claims(), kid=None)) is not None
    assert await verifier.verify_token(sign(claims(), key=OTHER_KEY)) is None
    assert requests == ["/.well-known/jwks.json"]
    assert await verifier.verify_token(sign(claims(), kid="key-2")) is None  # unknown: no refetch in the cooldown
    assert requests == ["/.well-known/jwks.json"]


def test_a_missing_or_bad_jwks_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no-such\.json: No such file"):
        JwtVerifier(ISSUER, AUDIENCE, str(tmp_path / "no-such.json"))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match=r"bad\.json: not a JWKS"):
        JwtVerifier(ISSUER, AUDIENCE, str(tmp_path / "bad.json"))


def test_oauth_settings_go_together() -> None:
    with pytest.raises(ValueError, match="--oauth-audience \\(oauth_audience\\) and --oauth-jwks \\(oauth_jwks\\)"):
        Settings(oauth_issuer=ISSUER)
    with pytest.raises(ValueError, match="--oauth-issuer \\(oauth_issuer\\) not set"):
        Settings(oauth_audience=AUDIENCE, oauth_jwks="jwks.json")
    both = Settings(oauth_issuer=ISSUER, oauth_audience=AUDIENCE, oauth_jwks="jwks.json")
    assert (both.oauth_issuer, both.oauth_audience, both.oauth_jwks) == (ISSUER, AUDIENCE, "jwks.json")
    assert Settings(oauth_issuer="").oauth_issuer is None  # a blank env var is unset
