"""SQLite connection and numbered migrations (PRAGMA user_version holds the applied number)."""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path


def _migrations() -> list[tuple[int, str]]:
    found = []
    for entry in resources.files("paas.store.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text()))
    return sorted(found)


def _statements(sql: str) -> list[str]:
    """Split a script into statements the way SQLite's own tokenizer sees them."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()):
        raise ValueError("migration ends with an incomplete statement")
    return out


def connect(path: Path) -> sqlite3.Connection:
    """Open the database in WAL mode (readers never block the one writer) and migrate it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    migrate(conn)
    return conn


def fresh_id(conn: sqlite3.Connection, table: str) -> int:
    """An id no row of `table` ever had (SQLite would give a removed newest row's id again, and
    what is keyed by that id would pass to the new row). Called inside the inserting transaction."""
    retired = conn.execute("SELECT last FROM retired_ids WHERE tbl = ?", (table,)).fetchone()
    top = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]  # noqa: S608 - our names
    return max(top, retired[0] if retired else 0) + 1


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the database, each in its own transaction."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, sql in _migrations():
        if number <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check under the write lock: another process may have migrated meanwhile.
            if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(number)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = number
    return current
