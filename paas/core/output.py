"""Heroku-style progress output (`-----> step`, 7-space details), streamed live and kept."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

Sink = Callable[[str], None]
KEEP_HEAD = 2000  # a build's output kept for builds:output: the start and the end
KEEP_TAIL = 8000
MAX_LINE = 8192


class BuildLog:
    """Collects every line of a build/deploy and forwards each one to a live sink."""

    def __init__(self, sink: Sink | None = None) -> None:
        self._sink = sink
        self._lines: list[str] = []
        self._tail: deque[str] = deque(maxlen=KEEP_TAIL)
        self._cut = 0
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        """Stream every line live; keep at most KEEP_HEAD + KEEP_TAIL lines of MAX_LINE chars."""
        for ln in text.rstrip("\n").split("\n"):
            if len(ln) > MAX_LINE:
                ln = ln[:MAX_LINE] + " [...]"
            with self._lock:
                if len(self._lines) < KEEP_HEAD:
                    self._lines.append(ln)
                else:
                    if len(self._tail) == KEEP_TAIL:
                        self._cut += 1
                    self._tail.append(ln)
            if self._sink is not None:
                self._sink(ln + "\n")

    def step(self, text: str) -> None:
        self.line(f"-----> {text}")

    def detail(self, text: str) -> None:
        self.line(f"       {text}")

    def done(self, text: str) -> None:
        self.line(f"=====> {text}")

    def error(self, text: str) -> None:
        self.line(f" !     {text}")

    def _kept(self) -> list[str]:
        cut = [f"       [... {self._cut} lines not kept ...]"] if self._cut else []
        return [*self._lines, *cut, *self._tail]

    def text(self) -> str:
        with self._lock:
            kept = self._kept()
        return "\n".join(kept) + ("\n" if kept else "")

    def tail(self, n: int = 20) -> list[str]:
        with self._lock:
            return self._kept()[-n:]
