"""The scheduler seam: both schedulers satisfy one protocol; the swarm one's reading of tasks
(where a task answers, which ones the router may use, what counts as a crash) on fake answers of
the Engine API. The real swarm is exercised in tests/e2e/test_swarm.py."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from paas import commands
from paas.core import names
from paas.core.context import Context
from paas.errors import PaasError
from paas.plugins import Plugins, hookimpl, plugins
from paas.scheduler import health
from paas.scheduler.docker_local import DockerLocal
from paas.scheduler.interface import Probe, ProcessFailed, Scheduler
from paas.services import apps, containers, schedulers
from paas.settings import Settings

plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
from paas_plugins.swarm.scheduler.swarm import Swarm, TaskProbe  # noqa: E402
from paas_plugins.swarm.settings import swarm_settings  # noqa: E402


def task(
    slot: int, state: str, node: str = "n1", port: int | None = 30001, desired: str = "running", **status
):  # type: ignore[no-untyped-def]
    ports = [{"TargetPort": 5000, "PublishedPort": port, "PublishMode": "host"}] if port else []
    return {
        "ID": f"t{slot}{state}{node}",
        "Slot": slot,
        "NodeID": node,
        "DesiredState": desired,
        "CreatedAt": f"2026-01-01T00:00:0{slot}Z",
        "Status": {
            "State": state,
            "PortStatus": {"Ports": ports},
            "Timestamp": "2026-01-01T00:00:00.123456789Z",
            **status,
        },
    }


class FakeApi:
    def __init__(self, tasks: list[dict], nodes: list[dict]) -> None:
        self._tasks, self._nodes = tasks, nodes

    def tasks(self, filters: dict) -> list[dict]:
        return self._tasks

    def nodes(self) -> list[dict]:
        return self._nodes


def node(node_id: str, addr: str, state: str = "ready") -> dict:
    return {
        "ID": node_id,
        "Status": {"State": state, "Addr": addr},
        "Description": {"Hostname": f"host-{node_id}"},
    }


def web_service() -> SimpleNamespace:
    spec = {"Labels": {"paas.process_type": "web", "paas.port": "5000", "paas.release": "3"}}
    return SimpleNamespace(id="svc", attrs={"Spec": {**spec, "Mode": {"Replicated": {"Replicas": 2}}}})


def swarm_with(tasks: list[dict], nodes: list[dict]) -> Swarm:
    return Swarm(SimpleNamespace(api=FakeApi(tasks, nodes)), "inst")  # type: ignore[arg-type]


def test_both_schedulers_satisfy_the_protocol() -> None:
    client = SimpleNamespace(api=None)
    assert isinstance(DockerLocal(client, "i"), Scheduler)  # type: ignore[arg-type]
    assert isinstance(Swarm(client, "i"), Scheduler)  # type: ignore[arg-type]
    assert isinstance(TaskProbe(Swarm(client, "i"), "svc", "web", 1, 5000), Probe)  # type: ignore[arg-type]


def test_the_router_gets_every_running_task_on_a_live_node() -> None:
    tasks = [
        task(1, "running", "n1", 30001),
        task(2, "running", "n2", 30002),
        task(3, "running", "n3", 30003),  # its node is down: swarm has not noticed the task yet
        task(4, "starting", "n1", None),
        task(5, "running", "n2", 30005, desired="shutdown"),  # being replaced
    ]
    nodes = [node("n1", "172.17.0.1"), node("n2", "172.17.0.5"), node("n3", "172.17.0.6", "down")]
    swarm = swarm_with(tasks, nodes)
    assert swarm.upstreams([web_service()]) == ["172.17.0.1:30001", "172.17.0.5:30002"]
    rows = {r.index: r for r in swarm_with(tasks[:2], nodes).rows_for(web_service())}
    assert rows[1].node == "host-n1" and rows[2].node == "host-n2" and rows[1].release == 3


def test_a_probe_answers_at_the_tasks_node_and_port() -> None:
    swarm = swarm_with([task(1, "running", "n2", 30002)], [node("n2", "172.17.0.5")])
    probe = TaskProbe(swarm, "svc", "web", 1, 5000)
    probe.refresh()
    assert probe.endpoint() == ("172.17.0.5", 30002)
    assert probe.crashed() is None
    assert probe.started_at() is not None and probe.started_at().microsecond == 123456  # type: ignore[union-attr]
    probe = TaskProbe(swarm_with([task(1, "preparing", "n2", None)], []), "svc", "web", 1, 5000)
    probe.refresh()
    assert probe.endpoint() is None  # not placed or not running yet: the checks keep waiting
    assert probe.preparing()  # its node pulls the image: not counted against the boot timeout
    running = TaskProbe(swarm, "svc", "web", 1, 5000)
    running.refresh()
    assert not running.preparing()


class PullingProbe:
    """A process whose image is pulled for `pull` seconds, then answers on a real HTTP server."""

    type, index = "web", 1

    def __init__(self, port: int, pull: float) -> None:
        self.port = port
        self.ready_at = time.monotonic() + pull

    dyno = "web.1"

    def refresh(self) -> None:
        pass

    def preparing(self) -> bool:
        return time.monotonic() < self.ready_at

    def endpoint(self) -> tuple[str, int] | None:
        return None if self.preparing() else ("127.0.0.1", self.port)

    def crashed(self) -> str | None:
        return None

    def log_tail(self) -> list[str]:
        return []

    def started_at(self) -> None:
        return None


def test_an_image_pull_never_counts_against_the_boot_timeout() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        # Before: a 1.5 s pull with a 0.5 s boot timeout failed ("did not bind $PORT ... within").
        health.wait_until_serving(PullingProbe(port, pull=1.5), timeout=0.5)  # type: ignore[arg-type]
        with pytest.raises(ProcessFailed, match="was not started within 1 s"):
            health.wait_until_serving(PullingProbe(port, pull=60), timeout=0.5, prepare_timeout=1)  # type: ignore[arg-type]
    finally:
        server.shutdown()


def test_what_counts_as_a_crash() -> None:
    exited = task(1, "failed", ContainerStatus={"ExitCode": 3}, Err="task: non-zero exit (3)")
    probe = TaskProbe(swarm_with([exited, task(1, "running")], []), "svc", "web", 1, 5000)
    probe.refresh()
    assert probe.crashed() == "web.1 exited with status 3"
    # A node that cannot run the task rejects it and swarm tries another: not a crash, twice.
    rejected = [task(1, "rejected", f"n{i}", Err="No such image") for i in range(2)]
    probe = TaskProbe(swarm_with(rejected, []), "svc", "web", 1, 5000)
    probe.refresh()
    assert probe.crashed() is None
    probe = TaskProbe(
        swarm_with([*rejected, task(1, "rejected", "n9", Err="No such image")], []), "svc", "web", 1, 5000
    )
    probe.refresh()
    assert probe.crashed() == "web.1 No such image (3 time(s))"
    # The host port it was given was taken: its container never started; swarm retries.
    taken = task(
        1, "failed", ContainerStatus={"ExitCode": 128}, Err="starting container failed: bind: address in use"
    )
    probe = TaskProbe(swarm_with([taken, task(1, "running")], []), "svc", "web", 1, 5000)
    probe.refresh()
    assert probe.crashed() is None


def test_scheduler_names_and_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = Context.open(Settings(data_dir=tmp_path / "plain"), is_admin=True)
    assert schedulers.validate(plain, " Swarm ") == "swarm"  # the built-in plugin's
    with pytest.raises(PaasError, match="unknown scheduler 'k8s': use one of docker-local, swarm"):
        schedulers.validate(plain, "k8s")
    monkeypatch.setenv("PAAS_SCHEDULER", "no mad;")
    with pytest.raises(SystemExit, match="PAAS_SCHEDULER must be a scheduler's name"):
        Settings.from_env()
    monkeypatch.setenv("PAAS_SCHEDULER", "nomad")  # a name, but no plugin loaded gives it
    nomad = Context.open(
        Settings(data_dir=tmp_path / "n", scheduler=Settings.from_env().scheduler), is_admin=True
    )
    with pytest.raises(PaasError, match="unknown scheduler 'nomad'"):
        apps.create_app(nomad, "new1")
    assert nomad.store.get_app("new1") is None
    monkeypatch.setenv("PAAS_SCHEDULER", "swarm")
    monkeypatch.setenv("PAAS_SWARM_CONSTRAINTS", "node.labels.apps==yes, node.role!=manager")
    s = Settings.from_env()
    assert s.scheduler == "swarm"
    assert swarm_settings(s).constraints == ("node.labels.apps==yes", "node.role!=manager")
    monkeypatch.setenv("PAAS_SWARM_CONSTRAINTS", "node.labels.x==y;rm -rf /")
    on_swarm = Context.open(replace(Settings.from_env(), data_dir=tmp_path / "c"), is_admin=True)
    with pytest.raises(PaasError, match="^PAAS_SWARM_CONSTRAINTS: 'node.labels.x==y;rm -rf /' is not a"):
        schedulers.by_name(on_swarm, "swarm")  # a deploy onto the swarm is refused, in one line
    ctx = Context.open(Settings(data_dir=tmp_path / "data"), is_admin=True)
    app = ctx.store.create_app("old")
    assert app.scheduler == "docker-local"  # the migration's default: every existing app stays put
    ctx.store.set_app_scheduler(app.id, "swarm")
    assert ctx.store.get_app("old").scheduler == "swarm"  # type: ignore[union-attr]


def test_swarm_is_the_swarm_plugins_and_goes_with_it(tmp_path: Path) -> None:
    """The core knows docker-local; `swarm` (its overlay networks, its readiness) comes from
    plugins/swarm through the interface, and is unknown when that plugin is turned off."""
    ctx = Context.open(Settings(data_dir=tmp_path / "on"), is_admin=True)
    app = ctx.store.create_app("web1", scheduler="swarm")
    found = schedulers.for_app(ctx, app)
    assert isinstance(found, Swarm) and isinstance(found, Scheduler) and found.network_driver == "overlay"
    assert containers.network_name(ctx, app) == names.app_overlay(ctx.settings.instance_id, "web1")
    local = ctx.store.create_app("web2")
    assert schedulers.for_app(ctx, local).network_driver == "bridge"
    assert containers.network_name(ctx, local) == names.app_network(ctx.settings.instance_id, "web2")
    off = Context.open(
        Settings(data_dir=tmp_path / "off", disabled_plugins=frozenset({"swarm"})), is_admin=True
    )
    assert schedulers.known(off) == ["docker-local"]
    with pytest.raises(PaasError, match="unknown scheduler 'swarm': use one of docker-local$"):
        schedulers.validate(off, "swarm")
    assert "nodes:list" not in commands.available(True, off.plugins)


class NomadPlugin:
    """A plugin providing a scheduler of its own (and trying to take a built-in name)."""

    @hookimpl
    def paas_schedulers(self) -> dict:
        return {
            "nomad": lambda ctx, app: ("nomad scheduler for", app.name if app else None),
            "docker-local": None,
        }


def test_a_plugin_provides_a_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pm = Plugins(builtin_dir=tmp_path / "none")
    pm._register(NomadPlugin(), "nomad", "1", "test")
    monkeypatch.setattr(Context, "plugins", property(lambda self: pm))
    ctx = Context.open(Settings(data_dir=tmp_path), is_admin=True)
    assert schedulers.known(ctx) == ["docker-local", "nomad"]
    assert schedulers.validate(ctx, "nomad") == "nomad"
    app = ctx.store.create_app("web1", scheduler="nomad")
    assert schedulers.for_app(ctx, app) == ("nomad scheduler for", "web1")
    assert isinstance(schedulers.by_name(ctx, "docker-local"), DockerLocal)  # the core's stays the core's
