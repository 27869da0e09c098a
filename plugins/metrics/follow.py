"""Follow the router's metrics log like `tail -F`, across rotation, from a saved position.

logrotate moves the file and tells nginx to reopen (USR1): the old file is read to its end for a
few seconds more (nginx may still finish writing to it), then the new one from its start. A file
cut shorter than the position (truncated) is read from its start. Only whole lines are returned;
`position` is where the next unread line starts, saved with the counts it produced.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
DRAIN_SECONDS = 5.0  # how long a rotated file is still read


class Follower:
    def __init__(self, path: Path, start: tuple[int, int] | None = None) -> None:
        self.path = path
        self._start = start  # (inode, offset) saved by the last run
        self._fh: BinaryIO | None = None
        self._inode = 0
        self._offset = 0  # the position after the last whole line returned
        self._partial = b""
        self._old: tuple[BinaryIO, float, bytes] | None = None  # a rotated file being drained

    @property
    def position(self) -> tuple[int, int] | None:
        return (self._inode, self._offset) if self._fh is not None else self._start

    def _open(self) -> bool:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 (kept open across calls)
        except FileNotFoundError:
            return False
        inode = os.fstat(fh.fileno()).st_ino
        offset = 0
        if (
            self._start is not None
            and self._start[0] == inode
            and os.fstat(fh.fileno()).st_size >= self._start[1]
        ):
            offset = self._start[1]  # where the last run stopped: nothing counted twice
        self._start = None
        fh.seek(offset)
        self._fh, self._inode, self._offset, self._partial = fh, inode, offset, b""
        return True

    def read(self) -> list[str]:
        """The whole lines written since the last call (rotated file first)."""
        lines: list[str] = []
        if self._old is not None:
            fh, until, partial = self._old
            data = partial + fh.read()
            head, _, rest = data.rpartition(b"\n")
            if head:
                lines.extend(head.decode("utf-8", "replace").split("\n"))
            if time.monotonic() > until:
                fh.close()
                self._old = None
            else:
                self._old = (fh, until, rest)
        if self._fh is None and not self._open():
            return lines
        assert self._fh is not None
        while True:
            data = self._fh.read(CHUNK)
            if not data:
                break
            data = self._partial + data
            head, sep, rest = data.rpartition(b"\n")
            if sep:
                lines.extend(head.decode("utf-8", "replace").split("\n"))
                self._offset += len(head) + 1
            self._partial = rest if sep else data
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return lines  # moved away, the new one not made yet: keep reading the old
        if st.st_ino != self._inode:  # rotated: drain the old one a little longer
            if self._old is not None:
                self._old[0].close()
            self._old = (self._fh, time.monotonic() + DRAIN_SECONDS, self._partial)
            self._fh = None
            self._open()
            lines.extend(self.read_current())
        elif st.st_size < self._offset:  # truncated
            self._fh.seek(0)
            self._offset, self._partial = 0, b""
        return lines

    def read_current(self) -> list[str]:
        """Whole lines of the current file only (after a switch)."""
        if self._fh is None:
            return []
        data = self._partial + self._fh.read()
        head, sep, rest = data.rpartition(b"\n")
        self._partial = rest if sep else data
        if not sep:
            return []
        self._offset += len(head) + 1
        return head.decode("utf-8", "replace").split("\n")

    def close(self) -> None:
        for fh in (self._fh, self._old[0] if self._old else None):
            if fh is not None:
                fh.close()
        self._fh, self._old = None, None
