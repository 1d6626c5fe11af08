"""A remote vLLM deployment (OpenAI-compatible API) instead of the in-process engine."""

# No `from __future__ import annotations`: Settings (another module) resolves these fields' annotations.

from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator


class RemoteSettings(BaseModel):
    """A remote vLLM deployment (OpenAI-compatible API) instead of the in-process engine."""

    backend: Literal["local", "openai"] = Field(
        "local", description="`local`: vLLM in this process; `openai`: a remote vLLM server or router at --base-url."
    )
    base_url: str | None = Field(None, description="The remote vLLM server or router, e.g. http://10.0.0.5:8000.")
    api_key: str | None = Field(None, description="Bearer token for the remote server (its --api-key).")
    remote_session_header: str = Field(
        "x-session-id", description="Header carrying the job id (or client) so a session-routing router keeps it."
    )
    remote_timeout_s: float = Field(600.0, gt=0, description="Longest wait for a remote answer's next bytes.")
    remote_connect_timeout_s: float = Field(10.0, gt=0, description="Longest wait to connect to the remote server.")
    remote_stats_interval_s: float = Field(1.0, gt=0, description="How often the remote /metrics is read.")
    remote_stream: Literal["auto", "always"] = Field(
        "auto",
        description="`auto`: unstreamed requests when the remote reports per-request metrics (vllm serve "
        "--enable-per-request-metrics) and no caller wants live text; `always`: stream every request.",
    )

    @model_validator(mode="after")
    def _backend_has_url(self) -> Self:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend `openai` needs --base-url (the remote vLLM server, e.g. http://host:8000)")
        if self.backend == "local" and self.base_url:
            raise ValueError("--base-url is for --backend openai; leave it out to run vLLM in this process")
        return self
