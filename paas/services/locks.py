"""Per-app deploy locks. File locks, because pushes run in separate processes."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from paas.errors import Conflict
from paas.services.context import Context


@contextmanager
def app_lock(ctx: Context, app: str, wait: bool = False) -> Iterator[None]:
    """Hold the app's deploy lock; without `wait`, refuse at once if someone else holds it."""
    ctx.settings.locks_dir.mkdir(parents=True, exist_ok=True)
    with open(ctx.settings.locks_dir / f"app-{app}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Conflict(f"a deploy of {app!r} is already running; try again when it ends") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
