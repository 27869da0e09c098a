"""The notifications' own SQLite file (WAL) under the plugin's folder: the webhooks, and the
deliveries with each attempt (the delivery log).

A delivery is queued by whichever process saw the event (a push, the server's reconcile pass);
the server's worker sends the ones that are due. Claiming a delivery moves its `next_at` on in
the same transaction, so two senders never send one attempt twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from paas.plugin_api import PluginDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS hooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app TEXT,                       -- NULL: every app and the platform's own events
    url TEXT NOT NULL,
    secret TEXT NOT NULL,           -- whsec_...: the Standard Webhooks signing key
    events TEXT NOT NULL,           -- comma-separated, or *
    format TEXT NOT NULL,           -- standard | slack
    created_by TEXT,
    by_admin INTEGER NOT NULL,      -- an admin's hook may reach private addresses
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,            -- msg_...: the webhook-id header, the same on every retry
    hook_id INTEGER NOT NULL REFERENCES hooks(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    app TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,            -- pending | delivered | failed
    attempts INTEGER NOT NULL,
    next_at REAL NOT NULL,
    created_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(state, next_at);
CREATE INDEX IF NOT EXISTS deliveries_hook ON deliveries(hook_id, created_at);
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    at REAL NOT NULL,
    status INTEGER,                 -- the receiver's HTTP status, NULL when none came
    error TEXT,
    seconds REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts(delivery_id);
"""
KEEP_DELIVERIES = 200  # per hook: the log stays bounded


@dataclass(frozen=True)
class Hook:
    id: int
    app: str | None
    url: str
    secret: str
    events: str
    format: str
    created_by: str | None
    by_admin: int
    created_at: float

    @property
    def event_list(self) -> list[str]:
        return [e for e in self.events.split(",") if e]

    def wants(self, event: str) -> bool:
        return event == "test" or self.events == "*" or event in self.event_list


@dataclass(frozen=True)
class Delivery:
    id: str
    hook_id: int
    event: str
    app: str | None
    payload: str
    state: str
    attempts: int
    next_at: float
    created_at: float
    last_status: int | None
    last_error: str | None


class NotificationStore(PluginDatabase):
    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA, foreign_keys=True)  # 0600: it holds the signing secrets

    # hooks
    def add_hook(
        self,
        app: str | None,
        url: str,
        secret: str,
        events: str,
        fmt: str,
        by: str | None,
        admin: bool,
        at: float,
    ) -> Hook:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO hooks (app, url, secret, events, format, created_by, by_admin, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (app, url, secret, events, fmt, by, int(admin), at),
            )
            hook_id = int(cur.lastrowid)  # type: ignore[arg-type]
        return self.hook(hook_id)  # type: ignore[return-value]

    def hook(self, hook_id: int) -> Hook | None:
        rows = self._all("SELECT * FROM hooks WHERE id = ?", (hook_id,))
        return Hook(**dict(rows[0])) if rows else None

    def hooks(self, app: str | None, include_all: bool) -> list[Hook]:
        """An app's hooks (and the platform-wide ones when `include_all`); app None: the platform's."""
        if app is None:
            rows = self._all("SELECT * FROM hooks WHERE app IS NULL ORDER BY id")
        elif include_all:
            rows = self._all("SELECT * FROM hooks WHERE app = ? OR app IS NULL ORDER BY id", (app,))
        else:
            rows = self._all("SELECT * FROM hooks WHERE app = ? ORDER BY id", (app,))
        return [Hook(**dict(r)) for r in rows]

    def remove_hook(self, hook_id: int) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM hooks WHERE id = ?", (hook_id,))

    def forget_app(self, app: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM hooks WHERE app = ?", (app,))

    def rename_app(self, old: str, new: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE hooks SET app = ? WHERE app = ?", (new, old))
            c.execute("UPDATE deliveries SET app = ? WHERE app = ?", (new, old))

    # deliveries
    def enqueue(
        self, delivery_id: str, hook: Hook, event: str, app: str | None, payload: str, at: float
    ) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO deliveries (id, hook_id, event, app, payload, state, attempts, next_at,"
                " created_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
                (delivery_id, hook.id, event, app, payload, at, at),
            )
            c.execute(
                "DELETE FROM deliveries WHERE hook_id = ? AND state != 'pending' AND id NOT IN"
                " (SELECT id FROM deliveries WHERE hook_id = ? ORDER BY created_at DESC LIMIT ?)",
                (hook.id, hook.id, KEEP_DELIVERIES),
            )

    def claim_due(self, now: float, hold: float, limit: int = 20) -> list[Delivery]:
        """Pending deliveries that are due, each held for `hold` seconds (one sender at a time)."""
        with self.transaction() as c:
            rows = c.execute(
                "SELECT * FROM deliveries WHERE state = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?",
                (now, limit),
            ).fetchall()
            for r in rows:
                c.execute("UPDATE deliveries SET next_at = ? WHERE id = ?", (now + hold, r["id"]))
        return [Delivery(**dict(r)) for r in rows]

    def claim(self, delivery_id: str, now: float, hold: float) -> Delivery | None:
        with self.transaction() as c:
            row = c.execute(
                "SELECT * FROM deliveries WHERE id = ? AND state = 'pending'", (delivery_id,)
            ).fetchone()
            if row is None:
                return None
            c.execute("UPDATE deliveries SET next_at = ? WHERE id = ?", (now + hold, delivery_id))
        return Delivery(**dict(row))

    def record_attempt(
        self,
        delivery_id: str,
        at: float,
        status: int | None,
        error: str | None,
        seconds: float,
        state: str,
        next_at: float,
    ) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO attempts (delivery_id, at, status, error, seconds) VALUES (?, ?, ?, ?, ?)",
                (delivery_id, at, status, error, seconds),
            )
            c.execute(
                "UPDATE deliveries SET attempts = attempts + 1, state = ?, next_at = ?, last_status = ?,"
                " last_error = ? WHERE id = ?",
                (state, next_at, status, error, delivery_id),
            )

    def delivery(self, delivery_id: str) -> Delivery | None:
        rows = self._all("SELECT * FROM deliveries WHERE id = ?", (delivery_id,))
        return Delivery(**dict(rows[0])) if rows else None

    def deliveries(self, hook_ids: list[int], limit: int) -> list[Delivery]:
        if not hook_ids:
            return []
        marks = ",".join("?" * len(hook_ids))
        rows = self._all(
            f"SELECT * FROM deliveries WHERE hook_id IN ({marks}) ORDER BY created_at DESC LIMIT ?",
            (*hook_ids, limit),
        )
        return [Delivery(**dict(r)) for r in rows]

    def attempts(self, delivery_id: str) -> list[dict]:
        return [
            dict(r)
            for r in self._all("SELECT * FROM attempts WHERE delivery_id = ? ORDER BY at", (delivery_id,))
        ]
