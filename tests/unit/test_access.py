"""Who may do what (core/access), and whose adapters are whose (the adapter registry on a real SQLite file):
roles in order, the role each tool needs (raised to admin when a call swaps the engine), ownership, and adapters
usable by their owner, by everyone once shared, deletable by their owner or an admin only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_llm.core.access import Forbidden, Principal, check_tool, needed_role, role_of_scopes
from mcp_llm.core.registry.adapters import AdapterRegistry
from mcp_llm.core.store import Store
from mcp_llm.errors import InputError

ALICE, BOB, ROOT, VERA = Principal("alice"), Principal("bob"), Principal("root", "admin"), Principal("vera", "viewer")
BASE = ("SmolLM2-135M-Instruct", "/nonexistent/model")  # no safetensors there: target modules are not checked


def test_roles_are_ordered_and_scopes_name_the_highest() -> None:
    assert ROOT.at_least("user") and ALICE.at_least("viewer") and not VERA.at_least("user")
    assert role_of_scopes(["openid", "mcp-llm:viewer", "mcp-llm:user"]) == "user"
    assert role_of_scopes(["mcp-llm:root"]) is None


@pytest.mark.parametrize(
    ("tool", "arguments", "role"),
    [
        ("generate", {}, "user"),
        ("list_jobs", {}, "viewer"),
        ("load_model", {"confirm": True}, "admin"),
        ("quantize", {}, "admin"),
        ("tune_serving", {"apply": False}, "admin"),
        ("benchmark", {}, "user"),
        ("benchmark", {"variants": []}, "user"),
        ("benchmark", {"variants": [{"max_num_seqs": 4}]}, "admin"),
        ("share_adapter", {}, "admin"),
    ],
)
def test_the_role_a_call_needs(tool: str, arguments: dict, role: str) -> None:
    assert needed_role(tool, arguments) == role


def test_a_refusal_names_the_tool_the_role_needed_and_the_callers_role() -> None:
    check_tool(ROOT, "load_model", {})
    with pytest.raises(Forbidden, match=r"^`load_model` needs the admin role .*client `alice` has the user role"):
        check_tool(ALICE, "load_model", {})
    with pytest.raises(Forbidden, match=r"^`generate` needs the user role"):
        check_tool(VERA, "generate", {})


def test_ownership_admins_own_everything_and_rows_without_an_owner_are_theirs() -> None:
    assert ALICE.owns("alice") and not ALICE.owns("bob") and not ALICE.owns(None)
    assert ROOT.owns("alice") and ROOT.owns(None)


def peft_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    config = {"base_model_name_or_path": BASE[0], "r": 4, "target_modules": ["q_proj"]}
    (path / "adapter_config.json").write_text(json.dumps(config))
    (path / "adapter_model.safetensors").write_bytes(b"weights")
    return path


def test_adapters_are_their_owners_until_an_admin_shares_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    reg = AdapterRegistry(store.db, tmp_path)
    reg.register("alices", peft_folder(tmp_path / "adapters" / "alices"), BASE, 16, "trained", {}, "alice")
    assert [a.name for a in reg.all(ALICE)] == ["alices"] and reg.all(BOB) == []
    assert [a.name for a in reg.all(ROOT)] == ["alices"]
    assert reg.resolve("alices", ALICE) is not None
    with pytest.raises(InputError, match="No adapter named 'alices'"):
        reg.resolve("alices", BOB)  # "not found", as for a name that does not exist
    reg.share("alices", True)
    assert reg.resolve("alices", BOB) is not None and reg.get("alices").shared
    with pytest.raises(Forbidden, match="belongs to alice"):
        reg.delete("alices", BOB)  # shared with bob, still alice's
    assert reg.delete("alices", ROOT).owner == "alice" and reg.all(ROOT) == []
    store.close()
