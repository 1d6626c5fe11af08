"""Bearer tokens for HTTP: `load_tokens` reads `auth_tokens` (comma-separated `client:token[:role]` or bare tokens)
and `auth_token_file` (one per line, `client token [role]` or a bare token, `#` comments), mapping each token to the
principal it names (role `user` unless given); a bad entry or an unreadable file is a ValueError naming it.
`StaticTokens` checks them and carries the role as an `mcp-llm:<role>` scope."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcp_llm.core.access import Principal, role_of_scopes
from mcp_llm.server.auth import StaticTokens, load_tokens
from mcp_llm.settings import Settings

pytestmark = pytest.mark.anyio


def names(tokens: dict[str, Principal]) -> dict[str, str]:
    return {token: principal.client for token, principal in tokens.items()}


def from_file(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "tokens"
    path.write_text(text)
    return names(load_tokens(Settings(auth_token_file=path)))


def test_no_token_settings_no_tokens() -> None:
    assert load_tokens(Settings()) == {}


def test_a_token_file_names_each_tokens_client(tmp_path: Path) -> None:
    text = """# who may call this server
alice   tok-alice-1
bob	tok-bob-2   # the build machine

   # an indented comment, then blank lines

carol tok-carol-3
"""
    assert from_file(tmp_path, text) == {"tok-alice-1": "alice", "tok-bob-2": "bob", "tok-carol-3": "carol"}


def test_a_bare_token_is_named_by_its_entry_number(tmp_path: Path) -> None:
    # comments and blank lines are not entries: the bare token is the second entry
    assert from_file(tmp_path, "# header\n\nalice tok-a\ntok-bare\n") == {"tok-a": "alice", "tok-bare": "client-2"}


@pytest.mark.parametrize("text", ["", "\n\n", "# only comments\n   # here too\n"])
def test_a_file_without_entries_gives_no_tokens(tmp_path: Path, text: str) -> None:
    assert from_file(tmp_path, text) == {}


def test_a_third_word_is_the_role_and_the_default_role_is_user(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("alice tok-a\nroot tok-r admin\nvera tok-v viewer\nbob tok-b user\n")
    assert load_tokens(Settings(auth_token_file=path)) == {
        "tok-a": Principal("alice", "user"),
        "tok-r": Principal("root", "admin"),
        "tok-v": Principal("vera", "viewer"),
        "tok-b": Principal("bob", "user"),
    }


def test_an_unknown_role_or_four_words_are_refused_naming_the_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("alice tok-a\nbob tok-b root\n")
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: entry 2 names the role 'root': use one of"):
        load_tokens(Settings(auth_token_file=path))
    path.write_text("alice tok-a\nbob tok b user\n")
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: entry 2 has an empty token or one with spaces$"):
        load_tokens(Settings(auth_token_file=path))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "no-such-file"
    with pytest.raises(ValueError, match=f"^auth_token_file {re.escape(str(path))}: No such file or directory$"):
        load_tokens(Settings(auth_token_file=path))


def test_inline_tokens_with_and_without_a_client() -> None:
    tokens = load_tokens(Settings(auth_tokens=" alice:tok-a , tok-b,, carol:tok:with:colons ,root:tok-r:admin"))
    assert names(tokens) == {"tok-a": "alice", "tok-b": "client-2", "tok:with:colons": "carol", "tok-r": "root"}
    assert [p.role for p in tokens.values()] == ["user", "user", "user", "admin"]  # a last part naming a role


@pytest.mark.parametrize(("inline", "entry"), [("alice:", 1), ("alice:tok-a, bob:", 2), ("alice:tok a", 1)])
def test_a_bad_inline_entry_is_named(inline: str, entry: int) -> None:
    with pytest.raises(ValueError, match=f"^auth_tokens: entry {entry} has an empty token or one with spaces$"):
        load_tokens(Settings(auth_tokens=inline))


def test_inline_tokens_and_a_file_are_merged_the_file_naming_a_shared_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("bob tok-b\nzed tok-shared\n")
    tokens = load_tokens(Settings(auth_tokens="alice:tok-a,carol:tok-shared", auth_token_file=path))
    assert names(tokens) == {"tok-a": "alice", "tok-shared": "zed", "tok-b": "bob"}


async def test_a_known_token_names_its_client_and_role_and_others_get_nothing() -> None:
    verifier = StaticTokens({"tok-alice-1": Principal("alice", "admin"), "tok-bob-2": Principal("bob", "user")})
    access = await verifier.verify_token("tok-bob-2")
    assert access is not None and (access.client_id, access.token) == ("bob", "tok-bob-2")
    assert role_of_scopes(access.scopes) == "user"
    admin = await verifier.verify_token("tok-alice-1")
    assert admin is not None and role_of_scopes(admin.scopes) == "admin"
    for wrong in ("", "tok-bob", "tok-bob-22", "TOK-BOB-2", " tok-bob-2"):
        assert await verifier.verify_token(wrong) is None, wrong
