"""Numbered migrations (core/db): a new database gets every table at the latest version; a database made before
migrations, without the columns added since, keeps its rows and gains the columns; migrating again changes
nothing; a database from a newer server is refused, untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from mcp_llm.core.db import MIGRATIONS, migrate, version
from mcp_llm.core.store import Store, StoreError

TABLES = {"jobs", "items", "requests", "benchmarks", "models", "adapters", "tasks"}


def schema(db: sqlite_utils.Database) -> list[str]:
    return [sql for (sql,) in db.execute("select sql from sqlite_master where sql is not null order by name")]


def test_a_new_database_gets_every_table_at_the_latest_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "new.db")
    assert set(store.db.table_names()) >= TABLES
    assert version(store.db) == len(MIGRATIONS) >= 4
    store.close()


def test_a_database_from_before_migrations_keeps_its_rows_and_gains_the_new_columns(tmp_path: Path) -> None:
    old = sqlite_utils.Database(tmp_path / "old.db")  # as a server made it before job leases and item numbers
    old["jobs"].insert({"id": "j1", "kind": "batch", "status": "completed", "total": 2}, pk="id")
    old["requests"].insert({"id": 1, "client": "alice", "kind": "generate", "status": "ok"}, pk="id")
    old.close()
    store = Store(tmp_path / "old.db")
    assert {"owner", "lease_until"} <= set(store.db["jobs"].columns_dict)
    assert "item" in store.db["requests"].columns_dict and "scores" in store.db["items"].columns_dict
    assert [r["id"] for r in store.db["jobs"].rows] == ["j1"] and store.db["requests"].count == 1
    assert version(store.db) == len(MIGRATIONS)
    before = schema(store.db)
    assert migrate(store.db) == len(MIGRATIONS) and schema(store.db) == before, "again: nothing changes"
    store.close()


def test_a_database_from_a_newer_server_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"pragma user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this server"):
        Store(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("pragma user_version").fetchone()[0] == len(MIGRATIONS) + 1
        assert conn.execute("select count(*) from sqlite_master").fetchone()[0] == 0
