"""A `server.py` subprocess whose start must fail does, with a message naming the cause: a broken prompt file,
a data dir another server owns. (More start failures live with their subject: tokens and binds in
test_http_security, settings in test_transports, a damaged database in test_faults, a read-only disk in
test_storage_faults.)"""

from __future__ import annotations

from pathlib import Path

from mcp_llm import datadir
from tests.support.servers import start_fails


def test_server_start_fails_on_a_broken_prompt_file(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "bad_yaml.md").write_text("---\nname: [unclosed\n---\nbody\n")  # as tests/unit/test_prompt_files.py
    stderr = start_fails(tmp_path, MCP_LLM_PROMPTS_DIR=str(prompts))
    assert "bad_yaml.md" in stderr


def test_a_second_server_on_an_owned_data_dir_is_refused(tmp_path: Path) -> None:
    with datadir.engine_owner(tmp_path):
        stderr = start_fails(tmp_path)
    assert "Another mcp-llm server" in stderr and str(tmp_path) in stderr and "--data-dir" in stderr
