"""`logs -t` and the dashboard's live log on this host's containers (faked: no docker here): a
line written after the last lines were read but before the container's follow stream opened
(its own thread, late under load) still shows, once; what the last lines showed is not shown
again. The real engine: tests/e2e/test_dashboard.py's live logs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from paas.core import names
from paas.core.context import Context
from paas.services import logs
from paas.settings import Settings


class FakeContainer:
    """A process container's log: `written` lines (docker timestamp, text); a follow stream
    serves what was written since `since` and then what comes, until closed."""

    def __init__(self) -> None:
        self.id = "c1"
        self.labels = {names.LABEL_TYPE: "web", names.LABEL_INDEX: "1"}
        self.written: list[tuple[str, str]] = []
        self.opened = threading.Event()
        self.follow_args: dict = {}

    def write(self, ts: str, text: str) -> None:
        self.written.append((ts, text))

    def logs(
        self,
        stream: bool,
        follow: bool,
        timestamps: bool,
        tail: int | str = "all",
        since: float | None = None,
    ):  # type: ignore[no-untyped-def]
        if not follow:
            picked = self.written[-tail:] if isinstance(tail, int) else self.written
            return iter([f"{ts} {text}\n".encode() for ts, text in picked])
        self.follow_args = {"tail": tail, "since": since}
        return self._follow(tail, since)

    def _follow(self, tail: int | str, since: float | None) -> Iterator[bytes]:
        if since is not None:  # every line, as the fake's timestamps are all after `since`
            sent = 0
        else:
            sent = len(self.written) if tail == 0 else 0
        self.opened.set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            while sent < len(self.written):
                ts, text = self.written[sent]
                yield f"{ts} {text}\n".encode()
                sent += 1
            time.sleep(0.01)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    ctx = Context.open(Settings(data_dir=tmp_path / "data"), actor="test", is_admin=True)
    ctx.store.create_app("shop")
    return ctx


def wait_until(check, timeout: float = 5) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_a_line_written_before_the_follow_stream_opens_is_shown_once(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = FakeContainer()
    container.write("2026-12-07T03:18:44.000000001Z", "older")
    container.write("2026-12-07T03:18:45.000000001Z", "booted")
    monkeypatch.setattr(logs, "_containers", lambda ctx, app, ptype: [container])
    monkeypatch.setattr(
        logs.schedulers, "for_app", lambda ctx, app: SimpleNamespace(log_sources=lambda a, p: [])
    )
    real_thread = threading.Thread

    class LateThread(real_thread):  # type: ignore[misc, valid-type]
        """The pump's thread starts after the request was served (a loaded box)."""

        def start(self) -> None:
            container.write("2026-12-07T03:18:51.500000001Z", "GET /?live=marker")
            super().start()

    monkeypatch.setattr(logs.threading, "Thread", LateThread)
    seen: list[str] = []
    stop = threading.Event()
    follower = real_thread(target=logs.follow, args=(ctx, "shop", seen.append, stop.is_set, 1), daemon=True)
    follower.start()
    try:
        assert wait_until(lambda: any("marker" in line for line in seen))
        container.write("2026-12-07T03:18:52.000000001Z", "after")
        assert wait_until(lambda: seen[-1].endswith("after"))
    finally:
        stop.set()
    assert container.follow_args["since"] is not None
    assert seen == [
        "2026-12-07T03:18:45.000000+00:00 app[web.1]: booted",  # the last line (-n 1)
        "2026-12-07T03:18:51.500000+00:00 app[web.1]: GET /?live=marker",
        "2026-12-07T03:18:52.000000+00:00 app[web.1]: after",
    ]
