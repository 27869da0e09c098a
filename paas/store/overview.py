"""Whole-fleet reads for the dashboard: one query each, whatever the number of apps."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

    from paas.store import Release


class OverviewStore:
    """Mixed into `Store`; uses its connection helpers."""

    if TYPE_CHECKING:

        def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]: ...
        def _release(self, row: sqlite3.Row | None) -> Release | None: ...

    def current_releases(self) -> dict[int, Release]:
        """Each app's newest succeeded release, by app id (see `Store.current_release`)."""
        rows = self._all(
            "SELECT r.* FROM releases r JOIN (SELECT app_id, MAX(version) AS version FROM releases"
            " WHERE status = 'succeeded' GROUP BY app_id) cur"
            " ON cur.app_id = r.app_id AND cur.version = r.version"
        )
        releases = [self._release(r) for r in rows]
        return {r.app_id: r for r in releases if r is not None}

    def current_build_ids(self) -> dict[int, int]:
        """Each app's current release's build id (as current_releases, without reading and
        decoding every release's config: the cron plugin asks on every reconcile pass)."""
        rows = self._all(
            "SELECT r.app_id, r.build_id FROM releases r JOIN (SELECT app_id, MAX(version) AS version"
            " FROM releases WHERE status = 'succeeded' GROUP BY app_id) cur"
            " ON cur.app_id = r.app_id AND cur.version = r.version WHERE r.build_id IS NOT NULL"
        )
        return {r["app_id"]: r["build_id"] for r in rows}

    def all_formations(self) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {}
        for r in self._all("SELECT app_id, type, quantity FROM formation ORDER BY app_id, type"):
            out.setdefault(r["app_id"], {})[r["type"]] = r["quantity"]
        return out

    def busy_app_ids(self) -> set[int]:
        """Apps with a build or release still pending: being deployed, or interrupted."""
        rows = self._all(
            "SELECT app_id FROM builds WHERE status = 'pending'"
            " UNION SELECT app_id FROM releases WHERE status = 'pending'"
        )
        return {r["app_id"] for r in rows}
