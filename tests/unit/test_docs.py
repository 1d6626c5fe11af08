"""The docs say what the server has: every tool, resource, resource template, prompt and setting is named where
a reader looks for it, and every relative link in the README and docs/ leads somewhere.

The server is built without an engine (`create_app` starts none; its lifespan would), so these tests take
seconds. A failure names what is missing: add it to the page the assertion names."""

from __future__ import annotations

import asyncio
import re
from functools import cache
from pathlib import Path

import pytest

from mcp_llm.server.app import create_app
from mcp_llm.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
SETTINGS_DOC = DOCS / "settings.md"
PAGES = sorted(DOCS.glob("*.md"))

APP = create_app(Settings())
TOOLS = sorted(tool.name for tool in asyncio.run(APP.list_tools()))
RESOURCES = sorted(str(resource.uri) for resource in asyncio.run(APP.list_resources()))
TEMPLATES = sorted(template.uri_template for template in asyncio.run(APP.list_resource_templates()))
PROMPTS = sorted(prompt.name for prompt in asyncio.run(APP.list_prompts()))
SETTINGS = sorted(Settings.model_fields)

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def prose(markdown: str) -> str:
    """The markdown without fenced code blocks (where `# comment` is no heading and `[x](y)` no link)."""
    return FENCE.sub("", markdown)


def everywhere() -> str:
    return "\n".join(text(path) for path in [README, *PAGES])


def test_the_app_lists_something() -> None:
    # An empty listing would make every parametrized test below vanish instead of fail.
    assert TOOLS and RESOURCES and TEMPLATES and PROMPTS and SETTINGS and PAGES


@pytest.mark.parametrize("name", TOOLS)
def test_tool_in_readme(name: str) -> None:
    assert f"`{name}`" in text(README), f"tool `{name}` is not in README.md's table (What it offers)"


@pytest.mark.parametrize("uri", RESOURCES + TEMPLATES)
def test_resource_documented(uri: str) -> None:
    assert f"`{uri}`" in everywhere(), f"resource `{uri}` is named neither in README.md nor in docs/*.md"


@pytest.mark.parametrize("name", PROMPTS)
def test_prompt_in_readme(name: str) -> None:
    assert f"`{name}`" in text(README), f"prompt `{name}` is not in README.md's table (What it offers)"


@pytest.mark.parametrize("field", SETTINGS)
def test_setting_in_settings_doc(field: str) -> None:
    flag, env = "--" + field.replace("_", "-"), "MCP_LLM_" + field.upper()
    doc = text(SETTINGS_DOC)
    assert f"`{flag}`" in doc or re.search(rf"\b{env}\b", doc), f"setting {field} ({flag}) is not in docs/settings.md"


@pytest.mark.parametrize("name", TOOLS)
def test_tool_in_instructions(name: str) -> None:
    instructions = APP.instructions or ""
    assert f"`{name}`" in instructions or "`tools/list`" in instructions, (
        f"tool `{name}` is not in the server's INSTRUCTIONS (mcp_llm/server/app.py), "
        "and they do not point to `tools/list`"
    )


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    return re.sub(r"[^\w\- ]", "", plain.strip().lower()).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(text(path))):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return frozenset(found)


def relative_links() -> list[tuple[Path, str]]:
    links = []
    for path in [README, *PAGES]:
        for target in LINK.findall(CODE_SPAN.sub("", prose(text(path)))):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto: ...
                links.append((path, target))
    return sorted(set(links))


LINKS = relative_links()


def test_there_are_links() -> None:
    assert len(LINKS) > 10  # the link pattern still finds the README's links to docs/


@pytest.mark.parametrize(("page", "target"), LINKS, ids=[f"{p.relative_to(REPO)}->{t}" for p, t in LINKS])
def test_relative_link_resolves(page: Path, target: str) -> None:
    where, _, anchor = target.partition("#")
    linked = (page.parent / where).resolve() if where else page
    assert linked.exists(), f"{page.relative_to(REPO)} links to {target}: {linked} does not exist"
    if anchor and linked.suffix == ".md":
        assert anchor in anchors(linked), f"{page.relative_to(REPO)} links to {target}: no such heading there"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_docs_page_linked_from_readme(page: Path) -> None:
    assert f"](docs/{page.name})" in text(README), f"docs/{page.name} is not linked from README.md"


MAKE_TARGETS = sorted(set(re.findall(r"(?:`|^)make ([a-z][a-z-]*)", everywhere(), re.MULTILINE)))


@pytest.mark.parametrize("target", MAKE_TARGETS)
def test_make_target_exists(target: str) -> None:
    makefile = text(REPO / "Makefile")
    assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), f"`make {target}` is not in the Makefile"
