"""CPU and memory samples of app containers, kept for a few minutes for the app page's chart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
    from contextlib import AbstractContextManager


@dataclass(frozen=True)
class Sample:
    app: str
    dyno: str
    container: str
    at: float
    cpu_total: int
    system_total: int
    online_cpus: int
    cpu_percent: float | None
    mem_bytes: int
    mem_limit: int


_COLUMNS = "app, dyno, container, at, cpu_total, system_total, online_cpus, cpu_percent, mem_bytes, mem_limit"


class SamplesStore:
    """Mixed into `Store`; uses its connection helpers."""

    if TYPE_CHECKING:

        def _one(self, sql: str, args: tuple = ()) -> sqlite3.Row | None: ...
        def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]: ...
        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def add_samples(self, samples: list[Sample], prune_before: float | None) -> None:
        """Store `samples`; and drop their apps' samples older than `prune_before` (None: the
        caller prunes every app's itself)."""
        with self.transaction() as c:
            c.executemany(
                f"INSERT INTO process_stats ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        s.app,
                        s.dyno,
                        s.container,
                        s.at,
                        s.cpu_total,
                        s.system_total,
                        s.online_cpus,
                        s.cpu_percent,
                        s.mem_bytes,
                        s.mem_limit,
                    )
                    for s in samples
                ],
            )
            # Per app, on its (app, at) index: a DELETE on `at` alone scanned every app's rows,
            # once for each app sampled (with 200 apps, 200 scans of 18,000 rows every 10 s).
            for app in sorted({s.app for s in samples} if prune_before is not None else ()):
                c.execute("DELETE FROM process_stats WHERE app = ? AND at < ?", (app, prune_before))

    def prune_samples(self, before: float) -> None:
        """Every app's samples older than `before` (apps destroyed or stopped since included):
        one scan, once per round of the sampler."""
        with self.transaction() as c:
            c.execute("DELETE FROM process_stats WHERE at < ?", (before,))

    def last_sample_at(self, app: str) -> float | None:
        row = self._one("SELECT MAX(at) FROM process_stats WHERE app = ?", (app,))
        return row[0] if row else None

    def last_sample_times(self) -> dict[str, float]:
        """When each app was last sampled, every app in one read (on the (app, at) index)."""
        return {
            r["app"]: r["at"] for r in self._all("SELECT app, MAX(at) AS at FROM process_stats GROUP BY app")
        }

    def last_samples(self, app: str) -> dict[str, Sample]:
        """The newest sample of each of the app's containers, by container id."""
        rows = self._all(
            f"SELECT {_COLUMNS} FROM process_stats WHERE id IN"
            " (SELECT MAX(id) FROM process_stats WHERE app = ? GROUP BY container)",
            (app,),
        )
        return {r["container"]: Sample(**dict(r)) for r in rows}

    def newest_samples(self) -> dict[str, dict[str, Sample]]:
        """`last_samples` of every app at once, by app (a round over every app: one read, not
        one per app)."""
        rows = self._all(
            f"SELECT {_COLUMNS} FROM process_stats WHERE id IN"
            " (SELECT MAX(id) FROM process_stats GROUP BY container)"
        )
        out: dict[str, dict[str, Sample]] = {}
        for r in rows:
            out.setdefault(r["app"], {})[r["container"]] = Sample(**dict(r))
        return out

    def samples_since(self, app: str, since: float) -> list[Sample]:
        rows = self._all(
            f"SELECT {_COLUMNS} FROM process_stats WHERE app = ? AND at >= ? ORDER BY at", (app, since)
        )
        return [Sample(**dict(r)) for r in rows]
