"""Workers (training, quantization: third-party code) get the server's environment without its secrets."""

from __future__ import annotations

from mcp_llm.workers.runner import scrubbed


def test_secret_looking_names_are_left_out_and_the_rest_kept() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "HF_HUB_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "0",
        "MCP_LLM_DATA_DIR": "/data",
        "MCP_LLM_AUTH_TOKENS": "alice:tok",
        "MCP_LLM_AUTH_TOKEN_FILE": "/etc/tokens",
        "MCP_LLM_OAUTH_JWKS": "/etc/jwks.json",
        "MCP_LLM_REQUEST_STATE_KEYS": "k1",
        "HF_TOKEN": "hf_x",
        "OPENAI_API_KEY": "sk-x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "PGPASSWORD": "x",
        "github_token": "x",
    }
    assert scrubbed(environ) == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "HF_HUB_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "0",
        "MCP_LLM_DATA_DIR": "/data",
    }
