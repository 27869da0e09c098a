"""Heroku-style progress output (`-----> step`, 7-space details), streamed live and kept."""

from __future__ import annotations

import threading
from collections.abc import Callable

Sink = Callable[[str], None]


class BuildLog:
    """Collects every line of a build/deploy and forwards each one to a live sink."""

    def __init__(self, sink: Sink | None = None) -> None:
        self._sink = sink
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        for ln in text.rstrip("\n").split("\n"):
            with self._lock:
                self._lines.append(ln)
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

    def text(self) -> str:
        with self._lock:
            return "\n".join(self._lines) + ("\n" if self._lines else "")

    def tail(self, n: int = 20) -> list[str]:
        with self._lock:
            return self._lines[-n:]
