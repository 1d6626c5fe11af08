"""The transport: stdio, or Streamable HTTP and what it accepts."""

# No `from __future__ import annotations`: Settings (another module) resolves these fields' annotations.

from typing import Literal

from pydantic import BaseModel, Field, field_validator


class HttpSettings(BaseModel):
    """The transport: stdio, or Streamable HTTP and what it accepts."""

    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    stateless_http: bool = Field(
        False, description="HTTP without sessions: any replica behind a load balancer can take any request."
    )
    json_response: bool = Field(False, description="Answer HTTP requests with JSON instead of SSE streams.")
    api_server_count: int = Field(
        1,
        ge=1,
        le=64,
        description="Front-end processes over the one in-process engine (vLLM's `--api-server-count`): each serves "
        "HTTP on the same port with its own event loop; needs --transport http, implies --stateless-http.",
    )
    request_state_keys: list[str] | None = Field(
        None,
        description="Secrets sealing 2026-07-28 requestState (first seals, all unseal): give every replica behind "
        "a load balancer the same ones, or a round trip that lands on another replica is rejected.",
    )
    max_request_body_bytes: int = Field(16 << 20, ge=1024, description="Largest HTTP request body accepted.")
    allowed_hosts: list[str] | None = Field(
        None, description="Host headers accepted besides loopback and the bound host (DNS-rebinding guard)."
    )
    allowed_origins: list[str] | None = Field(
        None, description="Browser Origins accepted besides http://localhost:* (DNS-rebinding guard)."
    )

    @field_validator("request_state_keys")
    @classmethod
    def _keys_are_long(cls, keys: list[str] | None) -> list[str] | None:
        if keys and any(len(key.encode()) < 32 for key in keys):
            raise ValueError("each key must be at least 32 bytes: make one with `openssl rand -hex 32`")
        return keys or None
