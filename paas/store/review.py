"""Review apps (issue 32): which branch of which parent each one was made from, and when it was
last pushed. The rules (names, who may, when they go) are in the review_apps plugin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
    from contextlib import AbstractContextManager


@dataclass(frozen=True)
class ReviewApp:
    app_id: int
    parent_id: int
    branch: str
    created_at: str
    pushed_at: str
    name: str = ""  # the review app's name (filled by the queries below)


class ReviewStore:
    """Mixed into `Store`; uses its connection helpers."""

    if TYPE_CHECKING:

        def _one(self, sql: str, args: tuple = ()) -> sqlite3.Row | None: ...
        def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]: ...
        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    _REVIEW = "SELECT review_apps.*, apps.name FROM review_apps JOIN apps ON apps.id = review_apps.app_id"

    def review_app(self, app_id: int) -> ReviewApp | None:
        row = self._one(f"{self._REVIEW} WHERE review_apps.app_id = ?", (app_id,))
        return ReviewApp(**dict(row)) if row else None

    def review_app_of_branch(self, parent_id: int, branch: str) -> ReviewApp | None:
        row = self._one(
            f"{self._REVIEW} WHERE review_apps.parent_id = ? AND review_apps.branch = ?", (parent_id, branch)
        )
        return ReviewApp(**dict(row)) if row else None

    def review_apps_of(self, parent_id: int) -> list[ReviewApp]:
        rows = self._all(f"{self._REVIEW} WHERE review_apps.parent_id = ? ORDER BY apps.name", (parent_id,))
        return [ReviewApp(**dict(r)) for r in rows]

    def review_apps_pushed_before(self, stamp: str) -> list[ReviewApp]:
        """Every review app whose last push is older than `stamp` (the stale timer's candidates)."""
        rows = self._all(
            f"{self._REVIEW} WHERE review_apps.pushed_at < ? ORDER BY review_apps.app_id", (stamp,)
        )
        return [ReviewApp(**dict(r)) for r in rows]

    def review_app_pushed(self, app_id: int, stamp: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE review_apps SET pushed_at = ? WHERE app_id = ?", (stamp, app_id))
