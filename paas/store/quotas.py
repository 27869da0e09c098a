"""Quotas in the store: the values an admin set per user, and each app's last measured disk use.

Plain data only; the rules (defaults, what counts, what is refused) are in `paas.services.quotas`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
    from contextlib import AbstractContextManager


class QuotasStore:
    """Mixed into `Store`; uses its connection helpers."""

    if TYPE_CHECKING:

        def _one(self, sql: str, args: tuple = ()) -> sqlite3.Row | None: ...
        def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]: ...
        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def user_quotas(self, user_id: int) -> dict[str, int]:
        rows = self._all("SELECT name, value FROM user_quotas WHERE user_id = ?", (user_id,))
        return {r["name"]: r["value"] for r in rows}

    def set_user_quotas(self, user_id: int, values: dict[str, int | None]) -> None:
        """Set (or, for None, drop back to the default) several quotas in one transaction."""
        with self.transaction() as c:
            for name, value in values.items():
                if value is None:
                    c.execute("DELETE FROM user_quotas WHERE user_id = ? AND name = ?", (user_id, name))
                else:
                    c.execute(
                        "INSERT INTO user_quotas (user_id, name, value) VALUES (?, ?, ?)"
                        " ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value",
                        (user_id, name, value),
                    )

    def apps_owned_by(self, user_id: int) -> list[int]:
        return [r["id"] for r in self._all("SELECT id FROM apps WHERE owner_id = ? ORDER BY id", (user_id,))]

    def set_disk_usage(self, app_id: int, parts: dict[str, int], at: float) -> None:
        self.set_disk_usages({app_id: parts}, at)

    def set_disk_usages(self, measured: dict[int, dict[str, int]], at: float) -> None:
        """Every measured app's parts in one transaction (one commit for a round over every
        app: a commit per app was a sixth of an idle server's CPU with 200 apps, py-spy)."""
        with self.transaction() as c:
            c.executemany("DELETE FROM app_disk_usage WHERE app_id = ?", [(app_id,) for app_id in measured])
            c.executemany(  # an app destroyed since it was measured is left out, not an error
                "INSERT INTO app_disk_usage (app_id, part, bytes, measured_at)"
                " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM apps WHERE id = ?)",
                [
                    (app_id, part, size, at, app_id)
                    for app_id, parts in measured.items()
                    for part, size in parts.items()
                ],
            )

    def disk_usage(self, app_ids: list[int]) -> dict[int, dict[str, int]]:
        """The last measured parts of each app (apps never measured are missing)."""
        if not app_ids:
            return {}
        marks = ",".join("?" * len(app_ids))
        rows = self._all(
            f"SELECT app_id, part, bytes FROM app_disk_usage WHERE app_id IN ({marks})", tuple(app_ids)
        )
        out: dict[int, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["app_id"], {})[r["part"]] = r["bytes"]
        return out
