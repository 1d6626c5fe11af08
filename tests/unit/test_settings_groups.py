"""Settings are defined in groups (mcp_llm/settings/) but stay one flat set of names: every field in exactly one
group, each group's fields read from its env vars and flags as before."""

from __future__ import annotations

import pytest

from mcp_llm.settings import GROUPS, Settings, load_settings


def test_every_setting_belongs_to_exactly_one_group() -> None:
    owners: dict[str, list[str]] = {}
    for group, model in GROUPS.items():
        for name in model.model_fields:
            owners.setdefault(name, []).append(group)
    assert set(owners) == set(Settings.model_fields)
    assert {name: groups for name, groups in owners.items() if len(groups) > 1} == {}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_each_group_reads_its_env_vars_and_flags(group: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One plain-typed field of the group, set by env var, then overridden by its flag."""
    samples = {int: ("7", "9", 9), float: ("7.5", "9.5", 9.5), str: ("seven", "nine", "nine")}
    samples |= {int | None: samples[int], str | None: samples[str]}
    fields = [(n, f.annotation) for n, f in GROUPS[group].model_fields.items() if f.annotation in samples]
    name, kind = sorted(fields, key=lambda field: field[1] in (int | None, str | None))[0]  # plain types first
    env, flag, parsed = samples[kind]
    monkeypatch.setenv(f"MCP_LLM_{name.upper()}", env)
    assert str(getattr(Settings(), name)) == env
    assert getattr(load_settings([f"--{name.replace('_', '-')}", flag]), name) == parsed
