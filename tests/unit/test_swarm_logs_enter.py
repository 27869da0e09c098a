"""A swarm app's `logs -t` and `enter` on fake Engine answers: each service's log stream read
frame by frame (partial messages joined, lines bounded, slots from task ids), closed from another
thread, new services followed and removed ones closed; `enter` on this host's tasks only, with
one clear line for a process on another node. The real swarm: tests/e2e/test_swarm.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from paas.core.context import Context
from paas.core.output import CUT_MARK, MAX_LINE
from paas.errors import PaasError
from paas.plugins import plugins
from paas.scheduler.interface import ProcessRow
from paas.services import logs, oneoff
from paas.settings import Settings

plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
from paas_plugins.swarm.scheduler.swarm import ServiceLogs, Swarm  # noqa: E402

TS = "2026-12-01T10:00:00.123456789Z"


def frame(task: str, text: str, ts: str = TS) -> bytes:
    """One message as docker sends it with timestamps and details."""
    details = f"com.docker.swarm.node.id=n1,com.docker.swarm.service.id=svc,com.docker.swarm.task.id={task}"
    return f"{ts} {details} {text}".encode()


class FakeLogApi:
    """The parts of APIClient that ServiceLogs uses; `frames` per call of `_get`."""

    def __init__(self, frames: list[bytes], tasks: list[dict]) -> None:
        self.frames, self._tasks = frames, tasks
        self.params: dict = {}
        self.task_reads = 0

    def _url(self, fmt: str, *args: str) -> str:
        return fmt.format(*args)

    def _get(self, url: str, params: dict, stream: bool) -> SimpleNamespace:
        self.params = params
        return SimpleNamespace(raw=SimpleNamespace(closed=True), frames=list(self.frames))

    def _get_result_tty(self, stream: bool, res: SimpleNamespace, is_tty: bool) -> Iterator[bytes]:
        yield from res.frames

    def tasks(self, filters: dict) -> list[dict]:
        self.task_reads += 1
        return self._tasks


def web_service(sid: str = "svc", release: int = 1) -> SimpleNamespace:
    labels = {"paas.process_type": "web", "paas.release": str(release)}
    return SimpleNamespace(id=sid, attrs={"Spec": {"Labels": labels}})


def test_service_lines_are_joined_bounded_and_named_by_slot() -> None:
    tasks = [{"ID": "t1", "Slot": 1}, {"ID": "t2", "Slot": 2}]
    api = FakeLogApi(
        [
            frame("t1", "first half, "),  # a partial message (no newline) ...
            frame("t2", "web.2 says hi\r\n"),  # ... another task's line in between ...
            frame("t1", "second half\n"),  # ... and the rest of the first one
            b"Error grabbing logs: rpc error\n",  # docker's own words: not an app line
            frame("t1", "x" * 16384),
            frame("t1", "x" * 16384),
            frame("t1", "x" * 16384 + "\n"),  # gigabytes without a newline are cut
            frame("t2", "no newline at the end"),
        ],
        tasks,
    )
    swarm = Swarm(SimpleNamespace(api=api), "inst")  # type: ignore[arg-type]
    got = swarm.log_lines(web_service(), 100)  # type: ignore[arg-type]
    assert api.params["details"] and api.params["timestamps"] and api.params["tail"] == 100
    assert [(dyno, text) for _, dyno, text in got[:3]] == [
        ("web.2", "web.2 says hi"),
        ("web.1", "first half, second half"),
        ("web.1", "x" * MAX_LINE + CUT_MARK),
    ]
    assert {ts for ts, _, _ in got} == {TS}
    assert got[3][1:] == ("web.2", "no newline at the end")  # what was left when the stream ended
    assert len(got) == 4 and api.task_reads == 1


def test_a_task_that_started_later_gets_its_slot() -> None:
    tasks = [{"ID": "t1", "Slot": 1}]
    api = FakeLogApi([frame("t1", "one\n"), frame("t9", "nine\n"), frame("t9", "again\n")], tasks)
    swarm = Swarm(SimpleNamespace(api=api), "inst")  # type: ignore[arg-type]
    stream = swarm.follow_logs(web_service())  # type: ignore[arg-type]
    lines = iter(stream)
    assert next(lines)[1:] == ("web.1", "one")
    tasks.append({"ID": "t9", "Slot": 3})  # swarm replaced a task of slot 3
    assert next(lines)[1:] == ("web.3", "nine")
    assert next(lines)[1:] == ("web.3", "again")
    assert api.task_reads == 2  # once at the start, once for the new task
    assert api.params["follow"] is True and api.params["tail"] == 0


class SocketApi(FakeLogApi):
    """A response on a real socket, as dockerd's: only closing the socket ends a read."""

    def __init__(self) -> None:
        super().__init__([], [{"ID": "t1", "Slot": 1}])
        self.ours, self.theirs = socket.socketpair()
        self.opened = threading.Event()

    def _get(self, url: str, params: dict, stream: bool) -> SimpleNamespace:
        self.params = params
        fp = SimpleNamespace(raw=SimpleNamespace(_sock=self.ours))
        self.opened.set()
        return SimpleNamespace(raw=SimpleNamespace(closed=False, _fp=SimpleNamespace(fp=fp)))

    def _get_result_tty(self, stream: bool, res: SimpleNamespace, is_tty: bool) -> Iterator[bytes]:
        while data := self.ours.recv(65536):
            yield data


def test_close_ends_a_follow_blocked_on_its_socket() -> None:
    api = SocketApi()
    stream = ServiceLogs(Swarm(SimpleNamespace(api=api), "inst"), web_service(), 0, follow=True)  # type: ignore[arg-type]
    seen: list[tuple[str, str, str]] = []
    reader = threading.Thread(target=lambda: seen.extend(stream), daemon=True)
    reader.start()
    assert api.opened.wait(5)
    api.theirs.sendall(frame("t1", "hello\n"))
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [x[1:] for x in seen] == [("web.1", "hello")]
    assert reader.is_alive()  # nothing more to read: it waits on the socket
    stream.close()
    reader.join(5)
    assert not reader.is_alive()
    api.theirs.close()


def test_a_stream_closed_before_it_opened_reads_nothing() -> None:
    api = FakeLogApi([frame("t1", "late\n")], [{"ID": "t1", "Slot": 1}])
    stream = Swarm(SimpleNamespace(api=api), "inst").follow_logs(web_service())  # type: ignore[arg-type]
    stream.close()  # the session ended while the thread was still starting
    assert list(stream) == []


# ------------------------------------------------------------------ follow(): services come and go


class FakeStream:
    def __init__(self, sid: str, tail: int | str) -> None:
        self.sid, self.tail = sid, tail
        self.lines: list[tuple[str, str, str]] = []
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        sent = 0
        while not self.closed.is_set():
            while sent < len(self.lines):
                yield self.lines[sent]
                sent += 1
            time.sleep(0.02)

    def close(self) -> None:
        self.closed.set()


class FakeSwarm(Swarm):
    def __init__(self) -> None:
        super().__init__(SimpleNamespace(api=None), "inst")  # type: ignore[arg-type]
        self.services = [web_service("s1", 1)]
        self.streams: dict[str, FakeStream] = {}

    def processes(self, app: str) -> list:  # type: ignore[override]
        return list(self.services)

    def log_lines(self, handle, tail: int) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
        return [(TS, "web.1", "before the follow")]

    def follow_logs(self, handle, tail: int | str = 0) -> FakeStream:  # type: ignore[no-untyped-def, override]
        self.streams[handle.id] = FakeStream(handle.id, tail)
        return self.streams[handle.id]


class FakeDocker:
    """No docker-local containers; `enter`'s Engine calls."""

    def __init__(self, rows: list[dict] | None = None) -> None:
        self.rows = rows or []
        self.execs: list[tuple[str, list[str]]] = []
        self.containers = SimpleNamespace(list=lambda **kw: [])
        self.api = SimpleNamespace(containers=lambda **kw: self.rows, exec_create=self._exec)

    def _exec(self, container: str, cmd: list[str], **kw: object) -> dict:
        self.execs.append((container, cmd))
        return {"Id": "exec1"}


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    ctx = Context.open(Settings(data_dir=tmp_path / "data"), actor="test", is_admin=True)
    ctx.store.create_app("shop", scheduler="swarm")
    ctx._extra["docker"] = FakeDocker()
    return ctx


def wait_until(check, timeout: float = 5) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_follow_streams_every_service_also_the_next_deploys(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    swarm = FakeSwarm()
    monkeypatch.setattr(logs.schedulers, "for_app", lambda ctx, app: swarm)
    seen: list[str] = []
    stop = threading.Event()
    follower = threading.Thread(
        target=logs.follow, args=(ctx, "shop", seen.append, stop.is_set, 10), daemon=True
    )
    follower.start()
    assert wait_until(lambda: "s1" in swarm.streams)
    first = swarm.streams["s1"]
    assert first.tail == 0  # recent() printed what came before
    first.lines.append(("2026-12-01T10:00:01.5Z", "web.2", "while following"))
    assert wait_until(lambda: len(seen) == 2)
    assert seen == [
        "2026-12-01T10:00:00.123456+00:00 app[web.1]: before the follow",
        "2026-12-01T10:00:01.500000+00:00 app[web.2]: while following",
    ]
    # A deploy: a new service starts, the old one is removed.
    swarm.services = [web_service("s1", 1), web_service("s2", 2)]
    assert wait_until(lambda: "s2" in swarm.streams, 3)
    assert swarm.streams["s2"].tail == "all"  # everything it printed since it started
    swarm.services = [web_service("s2", 2)]
    swarm.streams["s2"].lines.append((TS, "web.1", "the new release"))
    assert wait_until(lambda: first.closed.is_set(), 3)  # its stream would never end on its own
    assert wait_until(lambda: seen[-1].endswith("app[web.1]: the new release"))
    stop.set()
    follower.join(5)
    assert not follower.is_alive()
    assert all(s.closed.is_set() for s in swarm.streams.values())  # none left blocked


# ------------------------------------------------------------------ enter


def task_container(cid: str, ptype: str, slot: int, release: int = 1, state: str = "running") -> dict:
    labels = {
        "paas.instance": "inst",
        "paas.app": "shop",
        "paas.role": "process",
        "paas.process_type": ptype,
        "paas.release": str(release),
        "com.docker.swarm.service.id": "svc",
        "com.docker.swarm.task.name": f"paas-inst-shop-{ptype}-v{release}-abc123.{slot}.task{cid}",
    }
    return {"Id": cid, "Labels": labels, "State": state}


class PlacedSwarm(Swarm):
    def __init__(self, rows: list[ProcessRow]) -> None:
        super().__init__(SimpleNamespace(api=None), "inst")  # type: ignore[arg-type]
        self._rows = rows

    def rows(self, app: str) -> list[ProcessRow]:
        return self._rows

    def this_node(self) -> str:
        return "manager"


def row(ptype: str, index: int, node: str, state: str = "running") -> ProcessRow:
    return ProcessRow(ptype, index, state, 1, None, 0, f"id{index}", node)


@pytest.fixture
def placed(ctx: Context, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """web.1 and worker.1 on this host (the manager), web.2 on node-b."""
    docker = FakeDocker([task_container("c1", "web", 1), task_container("c3", "worker", 1)])
    docker.rows.append(task_container("old", "web", 1, state="exited"))
    ctx._extra["docker"] = docker
    rows = [row("web", 1, "manager"), row("web", 2, "node-b"), row("worker", 1, "manager")]
    monkeypatch.setattr(oneoff.schedulers, "for_app", lambda ctx, app: PlacedSwarm(rows))
    return docker


def test_enter_runs_in_a_task_on_this_host(ctx: Context, placed: FakeDocker) -> None:
    assert oneoff.enter(ctx, "shop", "web.1", ["id", "-u"], tty=False) == ("c1", "exec1")
    assert placed.execs[-1][0] == "c1" and placed.execs[-1][1][-2:] == ["id", "-u"]
    assert oneoff.enter(ctx, "shop", None, [], tty=False)[0] == "c1"  # the first web
    assert oneoff.enter(ctx, "shop", "worker", [], tty=False)[0] == "c3"
    assert ctx.store.list_events(1, app="shop")[0]["detail"] == "worker.1"


def test_enter_names_the_node_of_a_process_elsewhere(ctx: Context, placed: FakeDocker) -> None:
    with pytest.raises(PaasError) as err:
        oneoff.enter(ctx, "shop", "web.2", [], tty=False)
    assert str(err.value) == (
        "shop web.2 runs on node node-b: enter reaches processes on this host only (here: web.1, worker.1)"
    )
    with pytest.raises(PaasError, match="^shop has no running process web.7$"):
        oneoff.enter(ctx, "shop", "web.7", [], tty=False)
    assert placed.execs == []


def test_enter_with_nothing_here_suggests_run(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx._extra["docker"] = FakeDocker([])
    rows = [row("web", 1, "node-b"), row("web", 2, "node-c", state="starting")]
    monkeypatch.setattr(oneoff.schedulers, "for_app", lambda ctx, app: PlacedSwarm(rows))
    with pytest.raises(PaasError) as err:
        oneoff.enter(ctx, "shop", None, [], tty=False)
    assert str(err.value) == (
        "shop web.1 runs on node node-b: enter reaches processes on this host only "
        "(none of its processes run here; `run shop <command>` starts a one-off here)"
    )


def test_enter_on_docker_local_is_as_before(ctx: Context) -> None:
    """Containers with our own index label; no swarm to ask where the rest runs."""
    app = ctx.store.get_app("shop")
    assert app is not None
    ctx.store.set_app_scheduler(app.id, "docker-local")

    def local(cid: str, ptype: str, index: int, release: int) -> dict:
        labels = {"paas.app": "shop", "paas.process_type": ptype, "paas.index": str(index)}
        return {"Id": cid, "Labels": {**labels, "paas.release": str(release)}, "State": "running"}

    ctx._extra["docker"] = FakeDocker(
        [
            local("w2", "worker", 1, 2),
            local("old", "web", 1, 1),
            local("new", "web", 1, 2),
            local("b", "web", 10, 2),
        ]
    )
    assert oneoff.enter(ctx, "shop", None, [], tty=False)[0] == "new"  # web.1 of the newest release
    assert oneoff.enter(ctx, "shop", "web.10", [], tty=False)[0] == "b"
    assert oneoff.enter(ctx, "shop", "worker.1", [], tty=False)[0] == "w2"
    with pytest.raises(PaasError, match="^shop has no running process web.2$"):
        oneoff.enter(ctx, "shop", "web.2", [], tty=False)
