"""The state of the PaaS: apps, keys, config, builds, releases, formation, domains, events.

Only plain data goes in and out of here; rules live in `paas.services`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from paas.store.accounts import AccountsStore, ApiToken, User
from paas.store.db import connect, fresh_id
from paas.store.overview import OverviewStore
from paas.store.quotas import QuotasStore
from paas.store.review import ReviewApp, ReviewStore
from paas.store.samples import Sample, SamplesStore
from paas.store.snapshot import AppCopy, SnapshotStore
from paas.store.teams import Grant, TeamsStore

__all__ = [
    "ApiToken",
    "App",
    "AppCopy",
    "Grant",
    "Build",
    "Release",
    "ReviewApp",
    "Sample",
    "SshKey",
    "StorageDir",
    "Store",
    "User",
    "now",
]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class App:
    id: int
    name: str
    created_at: str
    stopped: int = 0
    owner_id: int | None = None  # the user who may do everything with it (None: admins only)
    scheduler: str = "docker-local"  # what runs its processes (paas.services.schedulers)
    parent_id: int | None = None  # a review app's parent: its permissions and owner are the parent's


@dataclass(frozen=True)
class StorageDir:
    """A storage folder's owner: the user who made it and the app it was made for (either may be
    None: a removed user or app, or a folder made before owners were kept)."""

    name: str
    owner_id: int | None
    app_id: int | None
    created_at: str


@dataclass(frozen=True)
class SshKey:
    id: int
    name: str
    fingerprint: str
    public_key: str
    is_admin: bool
    created_at: str
    user_id: int | None = None  # the user the key logs in as
    user: str | None = None  # that user's name (filled by `list_keys`)


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
    manifest: dict = field(default_factory=dict)  # app.json of the commit, as parsed once at push


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


class Store(AccountsStore, SamplesStore, OverviewStore, TeamsStore, QuotasStore, SnapshotStore, ReviewStore):
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
    def create_app(
        self,
        name: str,
        owner_id: int | None = None,
        scheduler: str = "docker-local",
        review: tuple[int, str] | None = None,
    ) -> App:
        """A new app; `review` (parent id, branch) makes it a review app of that parent, in the
        same transaction (no moment where it exists without its parent)."""
        with self.transaction() as c:
            app_id = fresh_id(c, "apps")
            stamp = now()
            c.execute(
                "INSERT INTO apps (id, name, created_at, owner_id, scheduler, parent_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (app_id, name, stamp, owner_id, scheduler, review[0] if review else None),
            )
            if review is not None:
                c.execute(
                    "INSERT INTO review_apps (app_id, parent_id, branch, created_at, pushed_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (app_id, review[0], review[1], stamp, stamp),
                )
        return self.get_app(name)  # type: ignore[return-value]

    def set_app_scheduler(self, app_id: int, scheduler: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE apps SET scheduler = ? WHERE id = ?", (scheduler, app_id))

    def get_app_by_id(self, app_id: int) -> App | None:
        row = self._one("SELECT * FROM apps WHERE id = ?", (app_id,))
        return App(**dict(row)) if row else None

    def get_app(self, name: str) -> App | None:
        row = self._one("SELECT * FROM apps WHERE name = ?", (name,))
        return App(**dict(row)) if row else None

    def rename_app(self, app_id: int, new_name: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE events SET app = ? WHERE app_id = ?", (new_name, app_id))
            c.execute("UPDATE apps SET name = ? WHERE id = ?", (new_name, app_id))

    def delete_app(self, app_id: int) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM releases WHERE app_id = ?", (app_id,))
            c.execute("DELETE FROM builds WHERE app_id = ?", (app_id,))
            c.execute("DELETE FROM apps WHERE id = ?", (app_id,))

    def set_stopped(self, app_id: int, stopped: bool) -> None:
        with self.transaction() as c:
            c.execute("UPDATE apps SET stopped = ? WHERE id = ?", (int(stopped), app_id))

    def get_setting(self, app_id: int, key: str) -> str | None:
        row = self._one("SELECT value FROM app_settings WHERE app_id = ? AND key = ?", (app_id, key))
        return row["value"] if row else None

    def get_settings(self, app_id: int, keys: list[str]) -> dict[str, str]:
        """Those of `keys` the app sets, in one query (a route reads ~30 of them every pass)."""
        marks = ", ".join("?" * len(keys))
        rows = self._all(
            f"SELECT key, value FROM app_settings WHERE app_id = ? AND key IN ({marks})", (app_id, *keys)
        )
        return {r["key"]: r["value"] for r in rows}

    def apps_with_setting(self, key: str, value: str) -> set[int]:
        """The ids of the apps whose `key` is `value`, in one read (a pass that looks for the few
        apps with a flag on, not at every app's flag)."""
        return {
            r["app_id"]
            for r in self._all("SELECT app_id FROM app_settings WHERE key = ? AND value = ?", (key, value))
        }

    def set_setting(self, app_id: int, key: str, value: str | None) -> None:
        with self.transaction() as c:
            if value is None:
                c.execute("DELETE FROM app_settings WHERE app_id = ? AND key = ?", (app_id, key))
            else:
                c.execute(
                    "INSERT INTO app_settings (app_id, key, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value",
                    (app_id, key, value),
                )

    def get_global_setting(self, key: str) -> str | None:
        row = self._one("SELECT value FROM global_settings WHERE key = ?", (key,))
        return row["value"] if row else None

    def get_global_settings(self, keys: list[str]) -> dict[str, str]:
        marks = ", ".join("?" * len(keys))
        rows = self._all(f"SELECT key, value FROM global_settings WHERE key IN ({marks})", tuple(keys))
        return {r["key"]: r["value"] for r in rows}

    def set_global_setting(self, key: str, value: str | None) -> None:
        with self.transaction() as c:
            if value is None:
                c.execute("DELETE FROM global_settings WHERE key = ?", (key,))
            else:
                c.execute(
                    "INSERT INTO global_settings (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def list_apps(self) -> list[App]:
        return [App(**dict(r)) for r in self._all("SELECT * FROM apps ORDER BY name")]

    # ssh keys
    def add_key(
        self, name: str, fingerprint: str, public_key: str, is_admin: bool, user_id: int | None = None
    ) -> SshKey:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO ssh_keys (name, fingerprint, public_key, is_admin, created_at, user_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, fingerprint, public_key, int(is_admin), now(), user_id),
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
        rows = self._all(
            "SELECT ssh_keys.*, users.name AS user FROM ssh_keys"
            " LEFT JOIN users ON users.id = ssh_keys.user_id ORDER BY ssh_keys.name"
        )
        return [self._key(r) for r in rows]  # type: ignore[misc]

    def remove_key(self, name: str) -> bool:
        with self.transaction() as c:
            return c.execute("DELETE FROM ssh_keys WHERE name = ?", (name,)).rowcount > 0

    def count_keys(self) -> int:
        return self._one("SELECT COUNT(*) FROM ssh_keys")[0]  # type: ignore[index]

    # config
    def get_config(self, app_id: int) -> dict[str, str]:
        rows = self._all("SELECT key, value FROM config_vars WHERE app_id = ? ORDER BY key", (app_id,))
        return {r["key"]: r["value"] for r in rows}

    def replace_config(self, app_id: int, config: dict[str, str]) -> None:
        """Make the app's config exactly `config` (one transaction)."""
        with self.transaction() as c:
            c.execute("DELETE FROM config_vars WHERE app_id = ?", (app_id,))
            c.executemany(
                "INSERT INTO config_vars (app_id, key, value) VALUES (?, ?, ?)",
                [(app_id, k, v) for k, v in config.items()],
            )

    # formation
    def get_formation(self, app_id: int) -> dict[str, int]:
        rows = self._all("SELECT type, quantity FROM formation WHERE app_id = ? ORDER BY type", (app_id,))
        return {r["type"]: r["quantity"] for r in rows}

    def app_marks(self) -> dict[int, tuple]:
        """Per app id, a value that changes whenever its releases (a new one, a status) or its
        formation do, read for every app at once: a reconcile pass tells the apps nothing
        happened to without reading each one's releases."""
        marks: dict[int, list] = {}
        for r in self._all(
            "SELECT app_id, COUNT(*) AS n, MAX(id) AS newest, SUM(status = 'pending') AS pending,"
            " SUM(status = 'succeeded') AS good FROM releases GROUP BY app_id"
        ):
            marks[r["app_id"]] = [(r["n"], r["newest"], r["pending"], r["good"])]
        for r in self._all("SELECT app_id, type, quantity FROM formation ORDER BY app_id, type"):
            marks.setdefault(r["app_id"], [()]).append((r["type"], r["quantity"]))
        return {app_id: tuple(found) for app_id, found in marks.items()}

    def set_formation(self, app_id: int, formation: dict[str, int]) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM formation WHERE app_id = ?", (app_id,))
            for ptype, qty in formation.items():
                c.execute(
                    "INSERT INTO formation (app_id, type, quantity) VALUES (?, ?, ?)"
                    " ON CONFLICT (app_id, type) DO UPDATE SET quantity = excluded.quantity",
                    (app_id, ptype, qty),
                )

    # builds
    def create_build(
        self, app_id: int, commit_sha: str, user: str | None, manifest: dict | None = None
    ) -> int:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO builds (app_id, commit_sha, status, user, created_at, manifest)"
                " VALUES (?, ?, 'pending', ?, ?, ?)",
                (app_id, commit_sha, user, now(), json.dumps(manifest or {})),
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

    def prune_build_outputs(self, app_id: int, keep: int) -> int:
        """Drop the output of all but the app's last `keep` builds (a noisy build is ~80 MB)."""
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE builds SET output = '' WHERE app_id = ? AND output != '' AND id NOT IN"
                " (SELECT id FROM builds WHERE app_id = ? ORDER BY id DESC LIMIT ?)",
                (app_id, app_id, keep),
            )
            return cur.rowcount

    def list_builds(self, app_id: int) -> list[Build]:
        rows = self._all("SELECT * FROM builds WHERE app_id = ? ORDER BY id DESC", (app_id,))
        return [self._build(r) for r in rows]  # type: ignore[misc]

    def _build(self, row: sqlite3.Row | None) -> Build | None:
        if row is None:
            return None
        d = dict(row)
        d["processes"] = json.loads(d["processes"])
        d["manifest"] = json.loads(d.get("manifest") or "{}")
        return Build(**d)

    def latest_build(self, app_id: int) -> Build | None:
        return self._build(
            self._one("SELECT * FROM builds WHERE app_id = ? ORDER BY id DESC LIMIT 1", (app_id,))
        )

    def forget_image(self, build_id: int) -> None:
        """The build's image was garbage-collected; its releases can no longer be rolled back to."""
        with self.transaction() as c:
            c.execute("UPDATE builds SET image = NULL WHERE id = ?", (build_id,))

    def get_build(self, build_id: int) -> Build | None:
        return self._build(self._one("SELECT * FROM builds WHERE id = ?", (build_id,)))

    def build_of(self, release: Release | None) -> Build | None:
        """The build a release runs (None: no release, or one without a build)."""
        return self.get_build(release.build_id) if release is not None and release.build_id else None

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

    def get_release(self, app_id: int, version: int) -> Release | None:
        return self._release(
            self._one("SELECT * FROM releases WHERE app_id = ? AND version = ?", (app_id, version))
        )

    def list_releases(self, app_id: int) -> list[Release]:
        rows = self._all("SELECT * FROM releases WHERE app_id = ? ORDER BY version DESC", (app_id,))
        return [self._release(r) for r in rows]  # type: ignore[misc]

    # events
    def add_event(self, app: App | str | None, user: str | None, action: str, detail: str = "") -> None:
        """An event about `app` (the app itself, or the name of one that exists now) is kept with
        its id: a later app of the same name does not inherit it."""
        with self.transaction() as c:
            if isinstance(app, App):
                app_id, name = app.id, app.name
            else:
                row = c.execute("SELECT id FROM apps WHERE name = ?", (app,)).fetchone() if app else None
                app_id, name = (row[0] if row else None), app
            c.execute(
                "INSERT INTO events (app, app_id, user, action, detail, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, app_id, user, action, detail, now()),
            )

    def list_events(self, limit: int = 50, app: App | str | None = None) -> list[dict]:
        """The newest `limit` events, or those of one app (by name: of the app that has it now)."""
        if app is None:
            rows = self._all("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,))
        else:
            found = app if isinstance(app, App) else self.get_app(app)
            if found is None:
                return []
            rows = self._all(
                "SELECT * FROM events WHERE app_id = ? ORDER BY id DESC LIMIT ?", (found.id, limit)
            )
        return [dict(r) for r in reversed(rows)]

    # storage folders
    def get_storage_dir(self, name: str) -> StorageDir | None:
        row = self._one("SELECT * FROM storage_dirs WHERE name = ?", (name,))
        return StorageDir(**dict(row)) if row else None

    def set_storage_dir(self, name: str, owner_id: int | None, app_id: int | None) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO storage_dirs (name, owner_id, app_id, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET owner_id = excluded.owner_id, app_id = excluded.app_id",
                (name, owner_id, app_id, now()),
            )

    # domains
    def list_domains(self, app_id: int) -> list[str]:
        rows = self._all("SELECT hostname FROM domains WHERE app_id = ? ORDER BY hostname", (app_id,))
        return [r["hostname"] for r in rows]

    def domain_owner(self, hostname: str) -> str | None:
        row = self._one(
            "SELECT apps.name FROM domains JOIN apps ON apps.id = domains.app_id WHERE hostname = ?",
            (hostname,),
        )
        return row["name"] if row else None

    def replace_domains(self, app_id: int, hostnames: list[str]) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM domains WHERE app_id = ?", (app_id,))
            c.executemany(
                "INSERT INTO domains (app_id, hostname) VALUES (?, ?)", [(app_id, h) for h in hostnames]
            )
