"""Raw byte I/O for interactive commands (`run`), over an SSH channel or the host terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Stdio(Protocol):
    """What `run` needs from wherever the user sits."""

    pty: tuple[str, int, int] | None  # (TERM, columns, rows) when the user has a terminal
    on_resize: Callable[[int, int], None] | None  # set by the command: (columns, rows)

    def read(self, n: int) -> bytes: ...  # b"" at end of input

    def write(self, data: bytes) -> None: ...

    def write_err(self, data: bytes) -> None: ...

    def disconnected(self) -> bool: ...
