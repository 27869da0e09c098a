"""The host terminal as raw byte I/O for `paas run` (the SSH side is in git_receiver.server)."""

from __future__ import annotations

import os
import signal
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class TerminalStdio:
    def __init__(self) -> None:
        self.on_resize: Callable[[int, int], None] | None = None
        self.pty: tuple[str, int, int] | None = None
        if sys.stdin.isatty() and sys.stdout.isatty():
            size = os.get_terminal_size()
            self.pty = (os.environ.get("TERM", "xterm"), size.columns, size.lines)

    def read(self, n: int) -> bytes:
        try:
            return os.read(0, n)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        os.write(1, data)

    def write_err(self, data: bytes) -> None:
        os.write(2, data)

    def disconnected(self) -> bool:
        return False

    @contextmanager
    def raw_mode(self) -> Iterator[None]:
        """Raw terminal while an interactive command runs; window changes are forwarded."""
        if self.pty is None:
            yield
            return
        saved = termios.tcgetattr(0)

        def winch(*_: object) -> None:
            size = os.get_terminal_size()
            if self.on_resize is not None:
                self.on_resize(size.columns, size.lines)

        previous = signal.signal(signal.SIGWINCH, winch)
        tty.setraw(0)
        try:
            yield
        finally:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, previous)
