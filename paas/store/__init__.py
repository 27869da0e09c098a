"""The state of the PaaS: apps, keys, config, builds, releases, formation, domains, events.

Only plain data goes in and out of here; rules live in `paas.services`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from paas.store.db import connect


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class App:
    id: int
    name: str
    created_at: str


@dataclass(frozen=True)
class SshKey:
    id: int
    name: str
    fingerprint: str
    public_key: str
    is_admin: bool
    created_at: str


@dataclass(frozen=True)
class Build:
    id: int
    app_id: int
    commit_sha: str
    status: str
    image: str | None
    processes: dict[str, str]
    buildpack: str | None
    output: str
    user: str | None
    created_at: str


@dataclass(frozen=True)
class Release:
    id: int
    app_id: int
    version: int
    build_id: int | None
    config: dict[str, str]
    formation: dict[str, int]
    description: str
    user: str | None
    status: str
    created_at: str


class Store:
    """A thin repository over SQLite; one instance per process, safe across threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path)
        self._lock = threading.RLock()

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _one(self, sql: str, args: tuple = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # apps
    def create_app(self, name: str) -> App:
        with self.transaction() as c:
            c.execute("INSERT INTO apps (name, created_at) VALUES (?, ?)", (name, now()))
        return self.get_app(name)  # type: ignore[return-value]

    def get_app(self, name: str) -> App | None:
        row = self._one("SELECT * FROM apps WHERE name = ?", (name,))
        return App(**dict(row)) if row else None

    def list_apps(self) -> list[App]:
        return [App(**dict(r)) for r in self._all("SELECT * FROM apps ORDER BY name")]

    # ssh keys
    def add_key(self, name: str, fingerprint: str, public_key: str, is_admin: bool) -> SshKey:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO ssh_keys (name, fingerprint, public_key, is_admin, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, fingerprint, public_key, int(is_admin), now()),
            )
        return self.get_key_by_fingerprint(fingerprint)  # type: ignore[return-value]

    def _key(self, row: sqlite3.Row | None) -> SshKey | None:
        if row is None:
            return None
        d = dict(row)
        d["is_admin"] = bool(d["is_admin"])
        return SshKey(**d)

    def get_key_by_fingerprint(self, fingerprint: str) -> SshKey | None:
        return self._key(self._one("SELECT * FROM ssh_keys WHERE fingerprint = ?", (fingerprint,)))

    def get_key(self, name: str) -> SshKey | None:
        return self._key(self._one("SELECT * FROM ssh_keys WHERE name = ?", (name,)))

    def list_keys(self) -> list[SshKey]:
        return [self._key(r) for r in self._all("SELECT * FROM ssh_keys ORDER BY name")]  # type: ignore[misc]

    def remove_key(self, name: str) -> bool:
        with self.transaction() as c:
            return c.execute("DELETE FROM ssh_keys WHERE name = ?", (name,)).rowcount > 0

    def count_keys(self) -> int:
        return self._one("SELECT COUNT(*) FROM ssh_keys")[0]  # type: ignore[index]

    # config
    def get_config(self, app_id: int) -> dict[str, str]:
        rows = self._all("SELECT key, value FROM config_vars WHERE app_id = ? ORDER BY key", (app_id,))
        return {r["key"]: r["value"] for r in rows}

    # formation
    def get_formation(self, app_id: int) -> dict[str, int]:
        rows = self._all("SELECT type, quantity FROM formation WHERE app_id = ? ORDER BY type", (app_id,))
        return {r["type"]: r["quantity"] for r in rows}

    def set_formation(self, app_id: int, formation: dict[str, int]) -> None:
        with self.transaction() as c:
            for ptype, qty in formation.items():
                c.execute(
                    "INSERT INTO formation (app_id, type, quantity) VALUES (?, ?, ?)"
                    " ON CONFLICT (app_id, type) DO UPDATE SET quantity = excluded.quantity",
                    (app_id, ptype, qty),
                )

    # builds
    def create_build(self, app_id: int, commit_sha: str, user: str | None) -> int:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO builds (app_id, commit_sha, status, user, created_at)"
                " VALUES (?, ?, 'pending', ?, ?)",
                (app_id, commit_sha, user, now()),
            )
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def finish_build(
        self,
        build_id: int,
        status: str,
        output: str,
        image: str | None = None,
        processes: dict[str, str] | None = None,
        buildpack: str | None = None,
    ) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE builds SET status = ?, output = ?, image = ?, processes = ?, buildpack = ?"
                " WHERE id = ?",
                (status, output, image, json.dumps(processes or {}), buildpack, build_id),
            )

    def get_build(self, build_id: int) -> Build | None:
        row = self._one("SELECT * FROM builds WHERE id = ?", (build_id,))
        if row is None:
            return None
        d = dict(row)
        d["processes"] = json.loads(d["processes"])
        return Build(**d)

    # releases
    def _release(self, row: sqlite3.Row | None) -> Release | None:
        if row is None:
            return None
        d = dict(row)
        d["config"] = json.loads(d["config"])
        d["formation"] = json.loads(d["formation"])
        return Release(**d)

    def create_release(
        self,
        app_id: int,
        build_id: int | None,
        config: dict[str, str],
        formation: dict[str, int],
        description: str,
        user: str | None,
    ) -> Release:
        """Record a pending release with the next version number (v1, v2, ...)."""
        with self.transaction() as c:
            version = c.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM releases WHERE app_id = ?", (app_id,)
            ).fetchone()[0]
            cur = c.execute(
                "INSERT INTO releases (app_id, version, build_id, config, formation, description,"
                " user, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (
                    app_id,
                    version,
                    build_id,
                    json.dumps(config),
                    json.dumps(formation),
                    description,
                    user,
                    now(),
                ),
            )
            rid = cur.lastrowid
        return self._release(self._one("SELECT * FROM releases WHERE id = ?", (rid,)))  # type: ignore[return-value]

    def set_release_status(self, release_id: int, status: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE releases SET status = ? WHERE id = ?", (status, release_id))

    def current_release(self, app_id: int) -> Release | None:
        """The newest release that deployed successfully: what should be running."""
        return self._release(
            self._one(
                "SELECT * FROM releases WHERE app_id = ? AND status = 'succeeded'"
                " ORDER BY version DESC LIMIT 1",
                (app_id,),
            )
        )

    def list_releases(self, app_id: int) -> list[Release]:
        rows = self._all("SELECT * FROM releases WHERE app_id = ? ORDER BY version DESC", (app_id,))
        return [self._release(r) for r in rows]  # type: ignore[misc]

    # events
    def add_event(self, app: str | None, user: str | None, action: str, detail: str = "") -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO events (app, user, action, detail, created_at) VALUES (?, ?, ?, ?, ?)",
                (app, user, action, detail, now()),
            )

    def list_events(self, limit: int = 50) -> list[dict]:
        rows = self._all("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]
