"""OAuth 2.1 resource server: JWT access tokens from an authorization server, checked against its JWKS.

`JwtVerifier` accepts a token only if its signature verifies with one of the issuer's keys (asymmetric
algorithms only), it has not expired, its `iss` is the issuer and its `aud` names this server, and its scopes
carry a role (`mcp-llm:<role>`, read by `core/access.role_of_scopes`). `ChainedVerifier` lets
these tokens work beside the static bearer tokens of `mcp_llm.server.auth`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread
import jwt
from mcp.server.auth.provider import AccessToken, TokenVerifier

from mcp_llm.core.access import ROLE_SCOPES, role_of_scopes

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")  # never `none`, never HS* (shared secrets)
RSA_ALGORITHMS = [name for name in ALGORITHMS if name[:2] in ("RS", "PS")]


def _is_url(jwks: str) -> bool:
    return jwks.startswith(("https://", "http://"))


def _signing_keys(keys: Sequence[jwt.PyJWK]) -> list[jwt.PyJWK]:
    return [key for key in keys if key.public_key_use in ("sig", None)]


def _algorithms_for(key: jwt.PyJWK) -> list[str]:
    """The allowed algorithms this key may verify: RSA keys any RS*/PS256, EC keys the one their curve fixes."""
    if key.key_type == "RSA":
        return RSA_ALGORITHMS
    if key.key_type == "EC" and key.algorithm_name in ALGORITHMS:
        return [key.algorithm_name]
    return []  # symmetric (`oct`) or other key types: never


def _words(value: Any) -> list[str]:
    """A scope claim as a list: a space-separated string (`scope`) or a list of strings (`scp`)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


class JwtVerifier(TokenVerifier):
    """JWT access tokens of one issuer, for one audience (this server's resource URL)."""

    def __init__(self, issuer: str, audience: str, jwks: str, leeway_s: float = 30) -> None:
        """`jwks` is the issuer's JWKS URL (operator configuration, fetched and cached) or a local JWKS JSON file."""
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self._client: jwt.PyJWKClient | None = None
        self._keys: list[jwt.PyJWK] = []
        if _is_url(jwks):
            self._client = jwt.PyJWKClient(jwks, cache_keys=True)
        else:
            try:
                self._keys = _signing_keys(jwt.PyJWKSet.from_json(Path(jwks).read_text()).keys)
            except OSError as exc:
                raise ValueError(f"oauth_jwks {jwks}: {exc.strerror}") from exc
            except (ValueError, jwt.PyJWTError) as exc:
                raise ValueError(f"oauth_jwks {jwks}: not a JWKS ({exc})") from exc
            if not self._keys:
                raise ValueError(f"oauth_jwks {jwks}: no signing keys")

    async def _key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key `kid` names; without a kid, the only signing key if there is exactly one."""
        if self._client is None:
            keys = self._keys
        elif kid is not None:
            # unknown kids refetch the JWKS at most once per cooldown (PyJWKClient's), in a worker thread
            return await anyio.to_thread.run_sync(self._client.get_signing_key, kid)
        else:
            keys = _signing_keys((await anyio.to_thread.run_sync(self._client.get_jwk_set)).keys)
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        return next((key for key in keys if key.key_id == kid), None)

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's AccessToken, or None (logged at debug with the reason) if anything about it is wrong."""
        try:
            claims = await self._decode(token)
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("oauth: cannot fetch the issuer's JWKS: %s", exc)
            return None
        except (jwt.PyJWTError, ValueError) as exc:
            log.debug("oauth: token refused: %s", exc)
            return None
        if claims is None:
            return None
        client = next((claims[c] for c in ("client_id", "azp", "sub") if isinstance(claims.get(c), str)), None)
        scopes = _words(claims.get("scope")) if "scope" in claims else _words(claims.get("scp"))
        if not client:
            log.debug("oauth: token refused: no client_id, azp or sub claim")
            return None
        if role_of_scopes(scopes) is None:
            log.debug("oauth: token of %s refused: no role scope (%s)", client, ", ".join(ROLE_SCOPES))
            return None
        subject = claims.get("sub")
        return AccessToken(
            token=token,
            client_id=client,
            scopes=scopes,
            expires_at=int(claims["exp"]),
            resource=self.audience,
            subject=subject if isinstance(subject, str) else None,
            claims=claims,
        )

    async def _decode(self, token: str) -> dict[str, Any] | None:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise jwt.InvalidTokenError("kid is not a string")
        key = await self._key(kid)
        if key is None:
            log.debug("oauth: token refused: no key for kid %r", kid)
            return None
        algorithms = _algorithms_for(key)
        if not algorithms:
            raise jwt.InvalidKeyError(f"key {kid!r} is not an RSA or EC signing key")
        return jwt.decode(
            token,
            key.key,
            algorithms=algorithms,
            audience=self.audience,
            issuer=self.issuer,
            leeway=self.leeway_s,
            options={"require": ["exp", "iss", "aud"]},
        )


class ChainedVerifier(TokenVerifier):
    """Several verifiers in turn (e.g. static tokens, then JWTs): the first AccessToken wins."""

    def __init__(self, verifiers: Sequence[TokenVerifier]) -> None:
        self.verifiers = list(verifiers)

    async def verify_token(self, token: str) -> AccessToken | None:
        """The first verifier's AccessToken for this token, or None if none accepts it."""
        for verifier in self.verifiers:
            access = await verifier.verify_token(token)
            if access is not None:
                return access
        return None
