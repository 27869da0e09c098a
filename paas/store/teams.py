"""Teams in the store: which user owns an app, who else may touch it, and which keys a user has.

Plain data only; the rules (who may do what) are in `paas.services.access`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from paas.store.accounts import User
from paas.store.db import fresh_id

if TYPE_CHECKING:
    import sqlite3
    from contextlib import AbstractContextManager


@dataclass(frozen=True)
class Grant:
    """One collaborator of an app and the permissions they were given."""

    user_id: int
    user: str
    permissions: tuple[str, ...]
    created_at: str


class TeamsStore:
    """Mixed into `Store`; uses its connection helpers."""

    if TYPE_CHECKING:

        def _one(self, sql: str, args: tuple = ()) -> sqlite3.Row | None: ...
        def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]: ...
        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def count_users(self) -> int:
        return self._one("SELECT COUNT(*) FROM users")[0]  # type: ignore[index]

    def count_admins(self) -> int:
        return self._one("SELECT COUNT(*) FROM users WHERE is_admin = 1")[0]  # type: ignore[index]

    def add_key_user(self, name: str, is_admin: bool, created_at: str) -> int:
        """A user made by `ssh-keys:add`: no password (the dashboard refuses an empty hash)."""
        with self.transaction() as c:
            user_id = fresh_id(c, "users")
            c.execute(
                "INSERT INTO users (id, name, password_hash, is_admin, created_at) VALUES (?, ?, '', ?, ?)",
                (user_id, name, int(is_admin), created_at),
            )
            return user_id

    def set_key_user(self, key_id: int, user_id: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE ssh_keys SET user_id = ? WHERE id = ?", (user_id, key_id))

    def key_names_of(self, user_id: int) -> list[str]:
        return [
            r["name"]
            for r in self._all("SELECT name FROM ssh_keys WHERE user_id = ? ORDER BY id", (user_id,))
        ]

    # owners
    def set_owner(self, app_id: int, user_id: int | None) -> None:
        with self.transaction() as c:
            c.execute("UPDATE apps SET owner_id = ? WHERE id = ?", (user_id, app_id))

    def transfer_app(self, app_id: int, user_id: int) -> None:
        """The new owner has every permission: a grant of theirs would only confuse `access`."""
        with self.transaction() as c:
            c.execute("UPDATE apps SET owner_id = ? WHERE id = ?", (user_id, app_id))
            c.execute("DELETE FROM app_access WHERE app_id = ? AND user_id = ?", (app_id, user_id))

    # grants
    def grants(self, app_id: int) -> list[Grant]:
        rows = self._all(
            "SELECT app_access.user_id, users.name AS user, permissions, app_access.created_at"
            " FROM app_access JOIN users ON users.id = app_access.user_id"
            " WHERE app_id = ? ORDER BY users.name",
            (app_id,),
        )
        return [
            Grant(
                r["user_id"], r["user"], tuple(p for p in r["permissions"].split(",") if p), r["created_at"]
            )
            for r in rows
        ]

    def grant_of(self, app_id: int, user_id: int) -> tuple[str, ...] | None:
        row = self._one(
            "SELECT permissions FROM app_access WHERE app_id = ? AND user_id = ?", (app_id, user_id)
        )
        return None if row is None else tuple(p for p in row["permissions"].split(",") if p)

    def set_grant(self, app_id: int, user_id: int, permissions: tuple[str, ...], created_at: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO app_access (app_id, user_id, permissions, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (app_id, user_id) DO UPDATE SET permissions = excluded.permissions",
                (app_id, user_id, ",".join(permissions), created_at),
            )

    def remove_grant(self, app_id: int, user_id: int) -> bool:
        with self.transaction() as c:
            cur = c.execute("DELETE FROM app_access WHERE app_id = ? AND user_id = ?", (app_id, user_id))
            return cur.rowcount > 0

    def grants_of_user(self, user_id: int) -> dict[int, tuple[str, ...]]:
        """app id -> the permissions this user was given there (one query for the app list)."""
        rows = self._all("SELECT app_id, permissions FROM app_access WHERE user_id = ?", (user_id,))
        return {r["app_id"]: tuple(p for p in r["permissions"].split(",") if p) for r in rows}

    def visible_app_ids(self, user_id: int) -> set[int]:
        """Apps the user owns or collaborates on (every collaborator may view)."""
        rows = self._all(
            "SELECT id FROM apps WHERE owner_id = ? UNION SELECT app_id FROM app_access WHERE user_id = ?",
            (user_id, user_id),
        )
        return {r[0] for r in rows}

    def user_of_key(self, fingerprint: str) -> User | None:
        row = self._one(
            "SELECT users.* FROM ssh_keys JOIN users ON users.id = ssh_keys.user_id WHERE fingerprint = ?",
            (fingerprint,),
        )
        if row is None:
            return None
        d = dict(row)
        d["is_admin"] = bool(d["is_admin"])
        return User(**d)

    def events_of_apps(self, app_ids: list[int], limit: int) -> list[dict]:
        """The newest `limit` events of these apps, by id (what a non-admin may read of the audit
        log: nothing of an earlier app that had the same name)."""
        if not app_ids:
            return []
        marks = ",".join("?" * len(app_ids))
        rows = self._all(
            f"SELECT * FROM events WHERE app_id IN ({marks}) ORDER BY id DESC LIMIT ?",  # noqa: S608 - marks only
            (*app_ids, limit),
        )
        return [dict(r) for r in reversed(rows)]
