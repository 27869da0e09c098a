"""The whole store copied out and back in, and one app's rows copied from a copy.

Backups take the store as a whole with SQLite's online backup API (a consistent copy while
writers go on), so a schema change needs nothing here. A restore writes the copy back through
the same API into the live database: every process's connection sees the new state on its next
read. One app is copied from a copy by following the schema's foreign keys, so tables added by
later migrations come along without being named here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from paas.errors import PaasError
from paas.store.db import _migrations, connect, fresh_id

if TYPE_CHECKING:
    import threading


def latest_schema() -> int:
    return max(n for n, _ in _migrations())


def schema_of(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def check_copy(path: Path) -> int:
    """A copy that can be restored here: intact, and not from a newer schema than this code's.
    Migrates it to this code's schema (it is a scratch copy) and returns the schema it had."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise PaasError(f"the store in the backup cannot be read: {exc}") from None
    if result != "ok":
        raise PaasError(f"the store in the backup is damaged: {result}")
    if version > latest_schema():
        raise PaasError(
            f"the backup's store has schema {version}, newer than this paas knows ({latest_schema()}): "
            "upgrade paas first"
        )
    try:
        connect(path).close()  # the scratch copy migrated to this code's schema
    except sqlite3.DatabaseError as exc:
        raise PaasError(f"the store in the backup cannot be brought to this schema: {exc}") from None
    return version


@dataclass
class AppCopy:
    """What copying one app brought over, and what it could not (a user this store lacks)."""

    app_id: int
    rows: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class SnapshotStore:
    """Mixed into `Store`; uses its path, connection and lock."""

    if TYPE_CHECKING:
        path: Path
        _conn: sqlite3.Connection
        _lock: threading.RLock

    def backup_to(self, dest: Path) -> None:
        """A consistent copy of the whole database at `dest` (its own reader connection: writers
        in this and other processes go on meanwhile)."""
        dest.unlink(missing_ok=True)
        source = sqlite3.connect(str(self.path), timeout=30)
        target = sqlite3.connect(str(dest))
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()

    def restore_from(self, copy: Path) -> None:
        """Make the live database exactly `copy` (already checked and migrated by `check_copy`),
        in one step under the database's write lock."""
        source = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            with self._lock:
                given = _ids_given(self._conn)
                source.backup(self._conn)
                # ids this store gave before stay retired: what was keyed by them (a removed
                # app's folders) never passes to a new row
                for table, last in given.items():
                    self._conn.execute(
                        "UPDATE retired_ids SET last = MAX(last, ?) WHERE tbl = ?", (last, table)
                    )
        finally:
            source.close()

    def users_from(self, copy: Path) -> dict[int, int | None]:
        """Each user id of `copy` -> the id of the user of that name here (None: none here)."""
        src = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            theirs = src.execute("SELECT id, name FROM users").fetchall()
        finally:
            src.close()
        with self._lock:
            ours = dict(self._conn.execute("SELECT name, id FROM users").fetchall())
        return {uid: ours.get(name) for uid, name in theirs}

    def copy_app_from(self, copy: Path, name: str) -> AppCopy:
        """Copy app `name` and every row that belongs to it (by a foreign key to `apps`, or to a
        row that does) from `copy` (same schema) into this store under new ids, in one
        transaction. Users are matched by name; a reference to a user this store lacks is
        dropped (or its row, when required) and reported."""
        src = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        src.row_factory = sqlite3.Row
        try:
            row = src.execute("SELECT * FROM apps WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise PaasError(f"the backup has no app {name!r}")
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    result = _copy_app(src, self._conn, row)
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            return result
        finally:
            src.close()


def _retired_tables(conn: sqlite3.Connection) -> set[str]:
    """Tables whose ids are never given twice (migration 0008's `retired_ids`), if any."""
    try:
        return {r[0] for r in conn.execute("SELECT tbl FROM retired_ids").fetchall()}
    except sqlite3.OperationalError:
        return set()


def _ids_given(conn: sqlite3.Connection) -> dict[str, int]:
    """The highest id each such table ever gave."""
    return {t: fresh_id(conn, t) - 1 for t in _retired_tables(conn)}


def _foreign_keys(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    """column -> the table it references."""
    return {fk[3]: fk[2] for fk in conn.execute(f"PRAGMA foreign_key_list('{table}')").fetchall()}


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    return [r[0] for r in rows]


def _columns(conn: sqlite3.Connection, table: str) -> dict[str, tuple[int, int]]:
    """column -> (not null, primary key position)."""
    return {c[1]: (c[3], c[5]) for c in conn.execute(f"PRAGMA table_info('{table}')").fetchall()}


def _rowid_key(columns: dict[str, tuple[int, int]]) -> str | None:
    """The INTEGER PRIMARY KEY column (a new id is given on insert), if the table has one alone."""
    keys = [c for c, (_, pk) in columns.items() if pk]
    return keys[0] if len(keys) == 1 and keys[0] == "id" else None


def _owned_tables(conn: sqlite3.Connection) -> list[str]:
    """Tables whose rows belong to an app, parents before children (builds before releases)."""
    fks = {t: _foreign_keys(conn, t) for t in _tables(conn)}
    owned: list[str] = []
    pending = {t for t, refs in fks.items() if "apps" in refs.values() and t != "apps"}
    while pending:
        ready = sorted(t for t in pending if not (set(fks[t].values()) & (pending - {t})))
        if not ready:  # a cycle: take them in name order
            ready = sorted(pending)
        owned.extend(ready)
        pending -= set(ready)
    return owned


def _copy_app(src: sqlite3.Connection, dst: sqlite3.Connection, app_row: sqlite3.Row) -> AppCopy:
    user_ids: dict[int, int | None] = {}

    def user(old: int | None) -> int | None:
        if old is None:
            return None
        if old not in user_ids:
            found = src.execute("SELECT name FROM users WHERE id = ?", (old,)).fetchone()
            here = None
            if found is not None:
                here = dst.execute("SELECT id FROM users WHERE name = ?", (found[0],)).fetchone()
            user_ids[old] = here[0] if here else None
            if here is None:
                result.skipped.append(f"user {found[0] if found else old} is not on this platform")
        return user_ids[old]

    result = AppCopy(app_id=0)
    maps: dict[str, dict[int, int]] = {}
    retired = _retired_tables(dst)

    def insert(table: str, row: sqlite3.Row, fks: dict[str, str]) -> None:
        columns = _columns(dst, table)
        key = _rowid_key(columns)
        values: dict[str, object] = {}
        for col in row.keys():
            if col not in columns or col == key:
                continue
            value = row[col]
            target = fks.get(col)
            if target == "users":
                value = user(value)
            elif target is not None and value is not None:  # a row copied with the app, or none
                value = maps.get(target, {}).get(value)
            if value is None and columns[col][0]:
                result.skipped.append(f"a row of {table} (its {col} is not on this platform)")
                return
            values[col] = value
        if key is not None and table in retired:
            values[key] = fresh_id(dst, table)
        cols = ", ".join(f'"{c}"' for c in values)
        marks = ", ".join("?" for _ in values)
        verb = "INSERT" if table == "apps" else "INSERT OR IGNORE"  # a row this store has already stays
        cur = dst.execute(f'{verb} INTO "{table}" ({cols}) VALUES ({marks})', tuple(values.values()))
        if cur.rowcount == 0:
            result.skipped.append(f"a row of {table} that is here already")
            return
        if key is not None:
            maps.setdefault(table, {})[row[key]] = int(cur.lastrowid)  # type: ignore[arg-type]
        result.rows[table] = result.rows.get(table, 0) + 1

    insert("apps", app_row, _foreign_keys(src, "apps"))
    result.app_id = maps["apps"][app_row["id"]]
    for table in _owned_tables(src):
        fks = _foreign_keys(src, table)
        app_cols = [c for c, t in fks.items() if t == "apps"]
        where = " OR ".join(f'"{c}" = ?' for c in app_cols)
        args = tuple(app_row["id"] for _ in app_cols)
        for row in src.execute(f'SELECT * FROM "{table}" WHERE {where}', args):
            insert(table, row, fks)
    return result
