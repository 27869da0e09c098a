"""The metrics history: its own SQLite file (WAL) under the plugin's folder, bounded in size.

Why SQLite and not a round-robin library (whisper, rrdtool): percentiles do not average, so a
1-hour bucket must be made from the histograms of its minutes, which fixed-function RRD archives
cannot do; SQLite merges them exactly, is in the standard library, and is what the store uses.

Every write adds into three resolutions at once (no roll-up job that could lag or fail):

    10 s buckets kept 1 hour, 1 min kept 2 days, 1 h kept 60 days  (TIERS)

so an app's history is at most 360 + 2,880 + 1,440 rows per release that had traffic in a
bucket (and the same per process type); `prune` drops what aged out. Adding is commutative,
so a line read late (after a server restart) lands in its own bucket.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from paas.plugin_api import PluginDatabase

from .stats import Stats

TIERS = ((10, 3600), (60, 2 * 86400), (3600, 60 * 86400))  # (bucket seconds, kept seconds)
MAX_SINCE = TIERS[-1][1]
TOTALS_KEPT = 7 * 86400  # Prometheus counters of a release without traffic this long are dropped

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    app TEXT NOT NULL, release INTEGER NOT NULL, step INTEGER NOT NULL, at INTEGER NOT NULL,
    n INTEGER NOT NULL, c1 INTEGER NOT NULL, c2 INTEGER NOT NULL, c3 INTEGER NOT NULL,
    c4 INTEGER NOT NULL, c5 INTEGER NOT NULL, bytes INTEGER NOT NULL, timed INTEGER NOT NULL,
    time_sum REAL NOT NULL, hist TEXT NOT NULL,
    PRIMARY KEY (app, step, at, release)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS processes (
    app TEXT NOT NULL, ptype TEXT NOT NULL, step INTEGER NOT NULL, at INTEGER NOT NULL,
    samples INTEGER NOT NULL, cpu_sum REAL NOT NULL, mem_sum REAL NOT NULL, mem_max INTEGER NOT NULL,
    PRIMARY KEY (app, step, at, ptype)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
    app TEXT NOT NULL, release INTEGER NOT NULL,
    n INTEGER NOT NULL, c1 INTEGER NOT NULL, c2 INTEGER NOT NULL, c3 INTEGER NOT NULL,
    c4 INTEGER NOT NULL, c5 INTEGER NOT NULL, bytes INTEGER NOT NULL, timed INTEGER NOT NULL,
    time_sum REAL NOT NULL, hist TEXT NOT NULL, last_at REAL NOT NULL,
    PRIMARY KEY (app, release)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1), inode INTEGER NOT NULL, offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS watches (
    app TEXT NOT NULL, release INTEGER NOT NULL, previous INTEGER NOT NULL,
    started_at REAL NOT NULL, ends_at REAL NOT NULL, state TEXT NOT NULL, reason TEXT,
    plan TEXT NOT NULL,
    PRIMARY KEY (app, release)
);
"""
_STATS = "n, c1, c2, c3, c4, c5, bytes, timed, time_sum, hist"


@dataclass(frozen=True)
class ProcessPoint:
    at: int
    samples: int
    cpu_sum: float  # sum over samples of the type's CPU % (all its processes)
    mem_sum: float  # sum over samples of the type's memory in bytes
    mem_max: int

    @property
    def cpu(self) -> float:
        return self.cpu_sum / self.samples if self.samples else 0.0

    @property
    def mem(self) -> float:
        return self.mem_sum / self.samples if self.samples else 0.0


@dataclass(frozen=True)
class Watch:
    app: str
    release: int
    previous: int
    started_at: float
    ends_at: float
    state: str  # watching, kept, rolled-back, rolling-back, superseded
    reason: str | None
    plan: str  # JSON: the settings it was started with and the previous release's baseline

    def as_json(self) -> dict:
        return {
            "release": self.release,
            "previous": self.previous,
            "started_at": self.started_at,
            "ends_at": self.ends_at,
            "state": self.state,
            "reason": self.reason,
        }


def _row_stats(row: sqlite3.Row | tuple) -> Stats:
    n, c1, c2, c3, c4, c5, sent, timed, time_sum, hist = tuple(row)[-10:]
    return Stats(n, [c1, c2, c3, c4, c5], sent, timed, time_sum, Stats.histogram_from(hist))


def _values(s: Stats) -> tuple:
    return (s.requests, *s.classes, s.bytes, s.timed, s.time_sum, s.histogram_text())


def step_for(since: float) -> int:
    """The finest resolution that still holds `since` seconds of history."""
    for step, kept in TIERS:
        if since <= kept:
            return step
    return TIERS[-1][0]


class History(PluginDatabase):
    """One per process; safe across threads (one connection, a lock)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)

    # writing
    def add_requests(
        self, buckets: dict[tuple[str, int, int], Stats], cursor: tuple[int, int] | None, now: float
    ) -> None:
        """Add (app, release, 10 s bucket start) -> counts into every tier and the totals, and
        move the log cursor, in one transaction: a crash never counts a line twice or loses one."""
        with self.transaction() as c:
            for (app, release, at), stats in buckets.items():
                for step, _ in TIERS:
                    key = (app, release, step, at - at % step)
                    row = c.execute(
                        f"SELECT {_STATS} FROM requests WHERE app=? AND release=? AND step=? AND at=?", key
                    ).fetchone()
                    merged = _row_stats(row).merge(stats) if row else stats
                    c.execute(
                        f"INSERT OR REPLACE INTO requests (app, release, step, at, {_STATS})"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (*key, *_values(merged)),
                    )
                row = c.execute(
                    f"SELECT {_STATS} FROM totals WHERE app=? AND release=?", (app, release)
                ).fetchone()
                total = _row_stats(row).merge(stats) if row else Stats().merge(stats)
                c.execute(
                    f"INSERT OR REPLACE INTO totals (app, release, {_STATS}, last_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (app, release, *_values(total), now),
                )
            if cursor is not None:
                c.execute("INSERT OR REPLACE INTO cursor (id, inode, offset) VALUES (1, ?, ?)", cursor)

    def add_processes(self, at: float, by_type: dict[tuple[str, str], tuple[float, int]]) -> None:
        """One sampling round: (app, process type) -> (CPU % summed over its processes, memory bytes)."""
        with self.transaction() as c:
            for (app, ptype), (cpu, mem) in by_type.items():
                for step, _ in TIERS:
                    key = (app, ptype, step, int(at) - int(at) % step)
                    row = c.execute(
                        "SELECT samples, cpu_sum, mem_sum, mem_max FROM processes"
                        " WHERE app=? AND ptype=? AND step=? AND at=?",
                        key,
                    ).fetchone()
                    samples, cpu_sum, mem_sum, mem_max = tuple(row) if row else (0, 0.0, 0.0, 0)
                    c.execute(
                        "INSERT OR REPLACE INTO processes (app, ptype, step, at, samples, cpu_sum, mem_sum,"
                        " mem_max) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (*key, samples + 1, cpu_sum + cpu, mem_sum + mem, max(mem_max, mem)),
                    )

    def prune(self, now: float) -> int:
        """Drop what each tier no longer keeps; returns the rows dropped."""
        dropped = 0
        with self.transaction() as c:
            for step, kept in TIERS:
                for table in ("requests", "processes"):
                    cur = c.execute(
                        f"DELETE FROM {table} WHERE step = ? AND at < ?", (step, now - kept - step)
                    )
                    dropped += cur.rowcount
            c.execute("DELETE FROM totals WHERE last_at < ?", (now - TOTALS_KEPT,))
        return dropped

    def cursor(self) -> tuple[int, int] | None:
        rows = self._all("SELECT inode, offset FROM cursor WHERE id = 1")
        return (rows[0]["inode"], rows[0]["offset"]) if rows else None

    def forget_app(self, app: str) -> None:
        with self.transaction() as c:
            for table in ("requests", "processes", "totals", "watches"):
                c.execute(f"DELETE FROM {table} WHERE app = ?", (app,))

    def rename_app(self, old: str, new: str) -> None:
        with self.transaction() as c:
            for table in ("requests", "processes", "totals", "watches"):
                c.execute(f"UPDATE {table} SET app = ? WHERE app = ?", (new, old))

    # reading
    def request_points(self, app: str, step: int, since: float) -> list[tuple[int, int, Stats]]:
        """(bucket start, release, counts) of the app from `since`, oldest first."""
        rows = self._all(
            f"SELECT at, release, {_STATS} FROM requests WHERE app = ? AND step = ? AND at >= ? ORDER BY at",
            (app, step, int(since - since % step)),
        )
        return [(r["at"], r["release"], _row_stats(r)) for r in rows]

    def release_stats(self, app: str, release: int, since: float, until: float | None = None) -> Stats:
        """All of one release's requests from `since` (10 s buckets while they are kept, then minutes)."""
        step = step_for(time.time() - since)
        rows = self._all(
            f"SELECT {_STATS} FROM requests"
            " WHERE app = ? AND release = ? AND step = ? AND at >= ? AND at < ?",
            (app, release, step, int(since - since % step), until if until is not None else 1e18),
        )
        total = Stats()
        for r in rows:
            total.merge(_row_stats(r))
        return total

    def process_points(self, app: str, step: int, since: float) -> dict[str, list[ProcessPoint]]:
        rows = self._all(
            "SELECT ptype, at, samples, cpu_sum, mem_sum, mem_max FROM processes"
            " WHERE app = ? AND step = ? AND at >= ? ORDER BY at",
            (app, step, int(since - since % step)),
        )
        out: dict[str, list[ProcessPoint]] = {}
        for r in rows:
            out.setdefault(r["ptype"], []).append(
                ProcessPoint(r["at"], r["samples"], r["cpu_sum"], r["mem_sum"], r["mem_max"])
            )
        return out

    def totals(self) -> list[tuple[str, int, Stats]]:
        rows = self._all(f"SELECT app, release, {_STATS} FROM totals ORDER BY app, release")
        return [(r["app"], r["release"], _row_stats(r)) for r in rows]

    def latest_processes(self, within: float, now: float) -> list[tuple[str, str, ProcessPoint]]:
        """The newest 10 s point of each app's process types, if it is recent."""
        step = TIERS[0][0]
        rows = self._all(
            "SELECT app, ptype, MAX(at) AS at, samples, cpu_sum, mem_sum, mem_max FROM processes"
            " WHERE step = ? AND at >= ? GROUP BY app, ptype",
            (step, int(now - within)),
        )
        return [
            (
                r["app"],
                r["ptype"],
                ProcessPoint(r["at"], r["samples"], r["cpu_sum"], r["mem_sum"], r["mem_max"]),
            )
            for r in rows
        ]

    # the post-deploy watch
    def start_watch(self, watch: Watch) -> None:
        """Record a watch; any older one of the app still watching is superseded."""
        with self.transaction() as c:
            c.execute(
                "UPDATE watches SET state = 'superseded' WHERE app = ? AND state = 'watching'", (watch.app,)
            )
            c.execute(
                "INSERT OR REPLACE INTO watches (app, release, previous, started_at, ends_at, state, reason,"
                " plan) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    watch.app,
                    watch.release,
                    watch.previous,
                    watch.started_at,
                    watch.ends_at,
                    watch.state,
                    watch.reason,
                    watch.plan,
                ),
            )

    def set_watch_state(self, app: str, release: int, state: str, reason: str | None, only_if: str) -> bool:
        """Move a watch on, only from the state `only_if` (two deciders never both act)."""
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE watches SET state = ?, reason = ? WHERE app = ? AND release = ? AND state = ?",
                (state, reason, app, release, only_if),
            )
            return cur.rowcount == 1

    def watches(self, state: str | None = None, app: str | None = None) -> list[Watch]:
        sql, args = "SELECT * FROM watches WHERE 1 = 1", []
        if state is not None:
            sql, args = sql + " AND state = ?", [*args, state]
        if app is not None:
            sql, args = sql + " AND app = ?", [*args, app]
        return [Watch(**dict(r)) for r in self._all(sql + " ORDER BY started_at", tuple(args))]


def merged(points: Iterable[tuple[int, int, Stats]]) -> Stats:
    total = Stats()
    for _, _, s in points:
        total.merge(s)
    return total
