"""The database's shape: every table, made and changed by numbered migrations (`migrations.py`), the version
applied kept in SQLite's `PRAGMA user_version`. The store, the registries and the task table only read and write."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from mcp_llm.core.db.migrations import MIGRATIONS

if TYPE_CHECKING:
    import sqlite_utils

__all__ = ["MIGRATIONS", "migrate", "version"]


def version(db: sqlite_utils.Database) -> int:
    """The number of migrations this database has had (0 for a new file, or one made before migrations)."""
    return db.execute("pragma user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database) -> int:
    """Apply the migrations this database has not had, in order, the version bumped after each (steps are
    idempotent: one cut short runs again); returns the version. A database from a newer server is refused."""
    current = version(db)
    if current > len(MIGRATIONS):
        raise sqlite3.DatabaseError(
            f"its schema is version {current}, newer than this server's {len(MIGRATIONS)} (made by a newer "
            "mcp-llm): run that version, or give this one another --data-dir"
        )
    for number, step in enumerate(MIGRATIONS[current:], start=current + 1):
        with db.conn:
            step(db)
            db.execute(f"pragma user_version = {number}")
    return len(MIGRATIONS)
