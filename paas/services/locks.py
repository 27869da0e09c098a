"""Per-app deploy locks: file locks, because pushes run in separate processes.

Changes to one app queue up behind each other (a second push waits, and says so); the
reconciler never waits: it skips an app whose lock is held.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from paas.core.context import Context
from paas.errors import Conflict

WAIT_LIMIT = 15 * 60.0


class AppLock:
    """`mark`: whether releasing it says the app changed (`released_since`); a reconcile pass's
    own hold does not, or every app would look changed to the next pass."""

    def __init__(self, ctx: Context, app: str, mark: bool = True) -> None:
        ctx.settings.locks_dir.mkdir(parents=True, exist_ok=True)
        self.app = app
        self.path = ctx.settings.locks_dir / f"app-{app}.lock"
        self.mark = mark
        self._fh: IO[str] | None = None

    def acquire(
        self, wait: bool = True, timeout: float = WAIT_LIMIT, on_wait: Callable[[], None] | None = None
    ) -> None:
        fh = open(self.path, "w")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                fh.close()
                raise Conflict(f"a deploy of {self.app!r} is running; try again when it ends") from None
            if on_wait is not None:
                on_wait()
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        fh.close()
                        raise Conflict(
                            f"gave up waiting {int(timeout)} s for another deploy of {self.app!r}"
                        ) from None
                    time.sleep(0.1)
        self._fh = fh

    @property
    def held(self) -> bool:
        return self._fh is not None

    def release(self) -> None:
        if self._fh is not None:
            try:  # what changed the app is done: a reconcile pass that listed before now lists again
                if self.mark:
                    released_path(self.path).touch()
            except OSError:
                pass
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def released_path(lock: Path) -> Path:
    return lock.with_name(lock.stem + ".released")


def released_since(ctx: Context, app: str, since: float) -> bool:
    """Whether someone released the app's lock after `since` (time.time()): whatever they did to
    its containers happened after a listing made at `since`."""
    try:  # file times come from the kernel's coarse clock, a few ms behind time.time(): a margin
        # os.stat on a string: a pass asks for every app, and pathlib's joins cost 4x the stat
        return os.stat(f"{ctx.settings.locks_dir}/app-{app}.released").st_mtime >= since - 1.0
    except OSError:
        return False


def is_held(ctx: Context, app: str) -> bool:
    """Whether a deploy holds the app's lock now (a shared probe never blocks anyone for long)."""
    path = ctx.settings.locks_dir / f"app-{app}.lock"
    try:
        fh = open(path)  # noqa: SIM115 - closed below
    except OSError:
        return False
    try:
        fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        fh.close()  # closing releases the probe's own lock, if it got one
    return False


@contextmanager
def app_lock(
    ctx: Context, app: str, wait: bool = True, on_wait: Callable[[], None] | None = None, mark: bool = True
) -> Iterator[None]:
    """Hold the app's lock; waits for a running deploy unless `wait` is False. `mark=False`:
    a reconcile pass's visit, which leaves no trace for the next pass (see AppLock)."""
    lock = AppLock(ctx, app, mark)
    lock.acquire(wait=wait, on_wait=on_wait)
    try:
        yield
    finally:
        lock.release()
