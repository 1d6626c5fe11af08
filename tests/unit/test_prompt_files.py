"""Prompt files that cannot be loaded are named: bad YAML, no front matter, a name that is not the file's, a
template that does not parse, an unknown key (no server; tests/system/test_start_failures.py checks that such a
file stops a real start)."""

from __future__ import annotations

import pytest

from mcp_llm.server.prompts import PromptFileError, load_prompts

BROKEN = {
    "bad_yaml.md": "---\nname: [unclosed\n---\nbody\n",
    "no_front_matter.md": "just text\n",
    "wrong_name.md": "---\nname: other\ntitle: t\ndescription: d\n---\nbody\n",
    "bad_template.md": "---\nname: bad_template\ntitle: t\ndescription: d\n---\n{% if %}\n",
    "unknown_key.md": "---\nname: unknown_key\ntitle: t\ndescription: d\ncolour: blue\n---\nbody\n",
}


@pytest.mark.parametrize("filename", sorted(BROKEN))
def test_a_broken_prompt_file_is_named(tmp_path, filename: str) -> None:
    (tmp_path / filename).write_text(BROKEN[filename])
    with pytest.raises(PromptFileError, match=filename):
        load_prompts(tmp_path)
