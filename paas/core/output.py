"""Heroku-style progress output (`-----> step`, 7-space details), streamed live and kept."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from paas.core.validation import printable, terminal_text

Sink = Callable[[str], None]
KEEP_HEAD = 2000  # a build's output kept for builds:output: the start and the end
KEEP_TAIL = 8000
MAX_LINE = 8192
CUT_MARK = " [...]"  # ends a line that was cut at MAX_LINE


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
            if len(ln) > MAX_LINE + len(CUT_MARK):  # split_lines() output passes as it is
                ln = ln[:MAX_LINE] + CUT_MARK
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


class LineSplitter:
    """Bytes as they come (a container's output) into lines without their newline.

    A stream owes us no newline: keep at most `max_line` bytes of the current line and cut the
    rest (the line then ends with CUT_MARK), so memory is bounded and each byte is looked at once.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._cutting = False  # the current line was cut: drop bytes up to its newline

    def feed(self, data: bytes) -> list[bytes]:
        """The lines that `data` completes."""
        out: list[bytes] = []
        start, end = 0, len(data)
        while start < end:
            nl = data.find(b"\n", start)
            stop = end if nl < 0 else nl
            if not self._cutting:
                room = self.max_line - len(self._buf)
                self._buf += data[start : min(stop, start + room)]
                if stop - start > room:
                    out.append(bytes(self._buf) + CUT_MARK.encode())
                    self._buf.clear()
                    self._cutting = True
            if nl < 0:
                break
            if not self._cutting:
                out.append(bytes(self._buf))
            self._buf.clear()
            self._cutting = False
            start = nl + 1
        return out

    @property
    def pending(self) -> bool:
        """Part of a line waits for its newline (or a cut line for its end)."""
        return bool(self._buf) or self._cutting

    def close(self) -> list[bytes]:
        """The last line, when the stream did not end with a newline."""
        rest = [bytes(self._buf)] if self._buf else []
        self._buf.clear()
        self._cutting = False
        return rest


def split_lines(chunks: Iterable[bytes], max_line: int = MAX_LINE) -> Iterator[str]:
    """Decoded lines (a trailing CR dropped) from a byte stream; see LineSplitter."""
    splitter = LineSplitter(max_line)
    for chunk in chunks:
        for raw in splitter.feed(chunk):
            yield raw.decode("utf-8", errors="replace").removesuffix("\r")
    for raw in splitter.close():
        yield raw.decode("utf-8", errors="replace").removesuffix("\r")


class TerminalWriter(io.TextIOBase):
    """A text stream that shows control characters as escapes before they reach a terminal.

    What a command prints holds text from users and apps (config values, app and build output,
    names in events): an ESC sequence there could set the reader's clipboard (OSC 52), move the
    cursor or forge lines. Line breaks and tabs pass; escaping is per character, so it does not
    matter how writes are cut."""

    def __init__(self, inner: IO[str]) -> None:
        self.inner = inner

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.inner.write(terminal_text(s))
        return len(s)

    def flush(self) -> None:
        self.inner.flush()


def json_text(data: object) -> str:
    """JSON for a terminal: non-ASCII stays readable, but every unprintable character (C1 codes,
    U+2028 ...) is a JSON escape, so the text is still JSON after `TerminalWriter`."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    return "".join(c if c.isprintable() or c in "\n" else json.dumps(c)[1:-1] for c in text)


LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class LogFormatter(logging.Formatter):
    """Log lines that hold user text (a request path, a name, an app's words) read as one line
    each, with control characters escaped: no forged lines in the log, no ESC sequence reaching
    the admin who tails it. A traceback keeps its line breaks."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return printable(super().formatMessage(record))

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]  # noqa: N802
        return terminal_text(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return terminal_text(super().formatStack(stack_info))


def configure_logging(level: int = logging.INFO, filename: str | None = None, fmt: str = LOG_FORMAT) -> None:
    """The process's log (stderr, or a file) through `LogFormatter`."""
    handler: logging.Handler = logging.FileHandler(filename) if filename else logging.StreamHandler()
    handler.setFormatter(LogFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
