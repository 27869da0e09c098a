"""Where a push spends its time: one log line per phase, read by bench/deploy.py.

Each line carries wall-clock start and end (the bench compares them with its own clock on the
same host) so phases of the pack process and of the client can be put on one time line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("paas.timing")


def mark(app: str, phase: str, start: float, end: float | None = None) -> None:
    """Log a phase that ran from `start` to `end` (time.time() values; end defaults to now)."""
    end = time.time() if end is None else end
    log.info("phase app=%s name=%s start=%.3f end=%.3f", app, phase, start, end)


@contextmanager
def phase(app: str, name: str) -> Iterator[None]:
    """Time the block as phase `name` of the app's current push or deploy."""
    start = time.time()
    try:
        yield
    finally:
        mark(app, name, start)
