"""Per-thread `sys.stdout`/`sys.stderr`/`sys.stdin`, so that `click.echo` and `print` in a command
reach the session that ran it (and `click.prompt` reads from it).

A plugin written with plain click writes with `click.echo`, which looks up `sys.stdout` (or
`sys.stderr`) at every call. The SSH server runs each session in a thread of one process, so
swapping the process's streams for the length of a command (as `click.testing` does) would send
one session's lines to another. Instead both are replaced, once, by a stand-in that writes to the
stream the current thread bound with `session_streams`, and to the process's own stream in every
other thread (the server's log, threads a command starts, the host terminal).
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

# .out / .err / .inp: the bound streams; .bound: inside session_streams; .writing: in a bound write
_local = threading.local()
_install_lock = threading.Lock()


class SessionStream(io.TextIOBase):
    """Stands in for `sys.stdout` or `sys.stderr` (`which` is "out" or "err")."""

    # click wraps a stream whose encoding looks like ASCII in a TextIOWrapper of its own and
    # caches that wrapper: it would then stop asking us where each write goes.
    encoding = "utf-8"
    errors = "replace"

    def __init__(self, which: str, fallback: IO[str]) -> None:
        self.which = which
        self.fallback = fallback

    def bound(self) -> IO[str] | None:
        """The stream this thread's command writes to, or None (outside a command, or while that
        stream itself writes here: the host CLI's output is the process's own stdout)."""
        if getattr(_local, "writing", False):
            return None
        return getattr(_local, self.which, None)

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):  # click tells text streams from binary ones by this
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        target = self.bound()
        if target is None:
            return self.fallback.write(s)
        _local.writing = True
        try:
            target.write(s)
        finally:
            _local.writing = False
        return len(s)

    def flush(self) -> None:
        target = self.bound()
        (self.fallback if target is None else target).flush()

    def isatty(self) -> bool:
        # A session's output is escaped for the terminal (TerminalWriter): click should strip
        # its colours rather than have them shown as escapes.
        return False if self.bound() is not None else self.fallback.isatty()

    def fileno(self) -> int:
        if self.bound() is not None:
            raise io.UnsupportedOperation("a session's stream has no file descriptor")
        return self.fallback.fileno()

    @property
    def buffer(self) -> _BinaryView:
        """Bytes (`click.echo(b"...")`, `click.get_binary_stream`) go the same way as text."""
        return _BinaryView(self)

    def close(self) -> None:
        """The process's stream stays open (a command closing `sys.stdout` must not end the
        server's log)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


class SessionInput(io.TextIOBase):
    """Stands in for `sys.stdin`: in a command, lines come from its session's input (so that
    `click.prompt`/`input()` read what the user types, never the server's own stdin); at the end
    of it, or without one, reads give "" (click then aborts)."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, fallback: IO[str]) -> None:
        self.fallback = fallback

    def bound(self) -> IO[bytes] | None:
        return getattr(_local, "inp", None) if getattr(_local, "bound", False) else None

    def _session(self) -> bool:
        return bool(getattr(_local, "bound", False))

    def readable(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:
        if not self._session():
            return self.fallback.readline(-1 if size is None else size)
        source, line = self.bound(), bytearray()
        while source is not None and (size is None or size < 0 or len(line) < size):
            byte = source.read(1)  # one at a time: what follows the line stays the command's
            if not byte:
                break
            line += byte
            if byte == b"\n":
                break
        return line.decode("utf-8", "replace")

    def read(self, size: int | None = -1) -> str:
        if not self._session():
            return self.fallback.read(-1 if size is None else size)
        source = self.bound()
        return "" if source is None else source.read(size).decode("utf-8", "replace")

    def isatty(self) -> bool:
        return False if self._session() else self.fallback.isatty()

    def fileno(self) -> int:
        if self._session():
            raise io.UnsupportedOperation("a session's input has no file descriptor")
        return self.fallback.fileno()

    def close(self) -> None:
        """The process's stdin stays open."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


class _BinaryView:
    """The `buffer` of a SessionStream: bytes decoded as UTF-8 onto the bound stream."""

    def __init__(self, text: SessionStream) -> None:
        self._text = text

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray) -> int:
        if self._text.bound() is None:
            return self._text.fallback.buffer.write(data)  # type: ignore[attr-defined]
        self._text.write(bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        if self._text.bound() is None:
            self._text.fallback.buffer.flush()  # type: ignore[attr-defined]
        else:
            self._text.flush()


def install() -> None:
    """Put the stand-ins in place of `sys.stdout` and `sys.stderr` (again, should something such
    as a test's capture have replaced them since)."""
    with _install_lock:
        if not isinstance(sys.stdout, SessionStream):
            sys.stdout = SessionStream("out", sys.stdout)
        if not isinstance(sys.stderr, SessionStream):
            sys.stderr = SessionStream("err", sys.stderr)
        if not isinstance(sys.stdin, SessionInput):
            sys.stdin = SessionInput(sys.stdin)


@contextmanager
def session_streams(out: IO[str], err: IO[str], inp: IO[bytes] | None = None) -> Iterator[None]:
    """While the block runs, what this thread writes to `sys.stdout`/`sys.stderr` goes to
    `out`/`err` and what it reads from `sys.stdin` comes from `inp` (None: nothing); other
    threads are not affected."""
    install()
    names = ("out", "err", "inp", "bound")
    before = [getattr(_local, n, None) for n in names]
    _local.out, _local.err, _local.inp, _local.bound = out, err, inp, True
    try:
        yield
    finally:
        for n, value in zip(names, before, strict=True):
            setattr(_local, n, value)
