"""The swarm scheduler against a real swarm: this host's dockerd as the manager (single node here;
the 3-node tests use the simulated hosts of tests/e2e/swarm_hosts.py), the real nginx router.

Each process type is a swarm service; deploys start the new release's services next to the old
ones, run the same checks against every task, move the route, then remove the old services."""

from __future__ import annotations

import http.server
import json
import os
import select
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest

from paas.buildpacks import stack
from paas.plugins import plugins
from paas.settings import Settings
from tests.e2e.conftest import PaasServer, wait_for
from tests.e2e.swarm_hosts import SwarmCluster, swarm_server

plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
from paas_plugins.swarm.scheduler.swarm_cluster import (  # noqa: E402
    NODES_TABLE,
    guarded_nodes,
)


@pytest.fixture(scope="module")
def swarm_paas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaasServer]:
    with swarm_server(tmp_path_factory.mktemp("swarm")) as server:
        yield server


def push(paas: PaasServer, src: Path):  # type: ignore[no-untyped-def]
    return paas.git(src, "push", "paas", "main")


def commit(paas: PaasServer, src: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (src / name).write_text(text)
    assert paas.git(src, "add", "-A").returncode == 0
    assert paas.git(src, "commit", "-qm", message).returncode == 0


def deployed(paas: PaasServer, prefix: str, template: str = "stdlib-web") -> tuple[str, Path]:
    return paas.deploy_new_repo(template, prefix)


def services_of(app: str) -> list:
    return docker.from_env().services.list(filters={"label": [f"paas.app={app}", "paas.role=process"]})


def ps(paas: PaasServer, app: str) -> list[dict]:
    r = paas.ssh("ps", app, "--format", "json")
    assert r.returncode == 0, r.output
    return json.loads(r.stdout)


class Load:
    """GETs through the router in a loop on a thread; every failure is kept."""

    def __init__(self, paas: PaasServer, host: str) -> None:
        self.paas, self.host = paas, host
        self.count = 0
        self.failures: list[str] = []
        self.bodies: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = self.paas.get(self.host)
                if status != 200:
                    self.failures.append(f"HTTP {status}: {body[:80]}")
                else:
                    self.bodies.add(body.strip())
            except Exception as exc:  # any failed request counts
                self.failures.append(f"{exc.__class__.__name__}: {exc}")
            self.count += 1

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def no_new_privs(pid: int) -> str:
    """The NoNewPrivs flag of a process: 1 when no exec of a setuid binary can raise it."""
    status = Path(f"/proc/{pid}/status").read_text()
    return next(line.split()[1] for line in status.splitlines() if line.startswith("NoNewPrivs:"))


def test_a_swarm_app_runs_as_services_and_serves_every_replica(swarm_paas: PaasServer) -> None:
    paas = swarm_paas
    app, _src = deployed(paas, "swarm")
    host = f"{app}.localhost"
    assert paas.get(host)[1].startswith("version 1 web.1")
    report = json.loads(paas.ssh("scheduler:report", app, "--format", "json").stdout)
    assert report["computed-selected"] == "swarm" and report["selected"] == ""  # the server's default
    svcs = services_of(app)
    assert len(svcs) == 1
    labels = svcs[0].attrs["Spec"]["Labels"]
    assert labels["paas.process_type"] == "web" and labels["paas.release"] == "1"
    spec = svcs[0].attrs["Spec"]["TaskTemplate"]
    assert spec["ContainerSpec"]["CapabilityDrop"] == ["ALL"]
    assert spec["ContainerSpec"]["User"] == "app"  # the image's own unprivileged user
    assert spec["Resources"]["Limits"]["MemoryBytes"] == 512 << 20
    assert svcs[0].attrs["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
    # No service option gives a task no-new-privileges (Engine 20.10): the engine does, for all.
    task = docker.from_env().containers.list(filters={"label": [f"paas.app={app}", "com.docker.swarm.task"]})[
        0
    ]
    assert no_new_privs(task.attrs["State"]["Pid"]) == "1"
    # The app's network is an attachable overlay of its own.
    network = docker.from_env().networks.get(spec["Networks"][0]["Target"])
    assert network.attrs["Driver"] == "overlay" and network.attrs["Attachable"]

    r = paas.ssh("apps:scale", app, "web=3")
    assert r.returncode == 0, r.output
    procs = ps(paas, app)
    assert sorted(p["dyno"] for p in procs) == ["web.1", "web.2", "web.3"]
    assert {p["state"] for p in procs} == {"running"}
    node = docker.from_env().info()["Name"]
    assert {p["node"] for p in procs} == {node}
    assert f"on {node}" in paas.ssh("ps", app).stdout
    seen = {paas.get(host)[1].split()[2] for _ in range(30)}
    assert seen == {"web.1", "web.2", "web.3"}  # the router reaches every task
    assert len(services_of(app)) == 1  # the old release's service is gone
    # One-offs join the app's overlay, where `web` names every web task (dnsrr), once swarm
    # retired the old release's task (a deploy does not wait for that).
    client = docker.from_env()
    wait_for(
        lambda: (
            len(client.containers.list(filters={"label": [f"paas.app={app}", "com.docker.swarm.task"]})) == 3
        )
    )
    ran = paas.ssh(
        "run", app, "python3", "-c", "'import socket; print(len(socket.gethostbyname_ex(\"web\")[2]))'"
    )
    assert ran.returncode == 0 and ran.stdout.strip().splitlines()[-1] == "3", ran.output
    logs = paas.ssh("logs", app, "-n", "2000").stdout
    assert "app[web.3]: version 1 listening on 5000" in logs  # swarm's logs, by dyno
    # enter reaches a task on this host (the manager), by its slot.
    entered = paas.ssh("enter", app, "web.2", "--", "printenv", "DYNO")
    assert entered.returncode == 0 and entered.stdout.strip() == "web.2", entered.output
    assert paas.ssh("enter", app, "--", "printenv", "DYNO").stdout.strip() == "web.1"
    missing = paas.ssh("enter", app, "web.9")
    assert missing.returncode == 1 and missing.stderr.strip() == f"error: {app} has no running process web.9"


def read_until(proc: subprocess.Popen, needle: str, timeout: float = 30) -> str:
    """What `proc` printed (from now) until `needle` showed up, or `timeout` passed."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and needle.encode() not in seen:
        if select.select([fd], [], [], 0.5)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


def test_logs_follow_a_swarm_app_across_a_deploy(swarm_paas: PaasServer) -> None:
    """`logs -t` streams every service's lines through the manager, and the next release's
    services too: a deploy starts new ones."""
    paas = swarm_paas
    app, src = deployed(paas, "swlogs")
    host = f"{app}.localhost"
    proc = subprocess.Popen(
        ["ssh", "-F", str(paas.ssh_config), "paas", "logs", app, "-t", "-n", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)
        assert paas.get(host, "/?before-the-deploy")[0] == 200
        seen = read_until(proc, "GET /?before-the-deploy")
        assert any("app[web.1]:" in ln and "GET /?before-the-deploy" in ln for ln in seen.splitlines()), seen
        commit(paas, src, {"VERSION": "2\n"}, "v2")
        r = push(paas, src)
        assert r.returncode == 0, r.output
        assert paas.get(host, "/?after-the-deploy")[1].startswith("version 2")
        seen += read_until(proc, "GET /?after-the-deploy")
        assert "GET /?after-the-deploy" in seen, seen
        assert any(ln.endswith("app[web.1]: version 2 listening on 5000") for ln in seen.splitlines()), seen
        assert proc.poll() is None  # still following
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_rolling_deploy_under_load_fails_no_request(swarm_paas: PaasServer) -> None:
    paas = swarm_paas
    app, src = deployed(paas, "swroll")
    host = f"{app}.localhost"
    assert paas.ssh("apps:scale", app, "web=2").returncode == 0
    commit(paas, src, {"VERSION": "2\n"}, "v2")
    with Load(paas, host) as load:
        time.sleep(0.5)
        r = push(paas, src)
        assert r.returncode == 0, r.output
        time.sleep(1)
    assert load.count > 50 and load.failures == [], f"{len(load.failures)}/{load.count}: {load.failures[:5]}"
    assert any(b.startswith("version 1") for b in load.bodies)
    assert paas.get(host)[1].startswith("version 2")
    svcs = services_of(app)
    assert [s.attrs["Spec"]["Labels"]["paas.release"] for s in svcs] == ["3"]  # v2 was the scale


@contextmanager
def outside_machine() -> Iterator[tuple[str, str]]:
    """A network namespace wired to this host by a veth pair, not by a docker bridge: its packets
    arrive as another machine's would (docker DNATs them; from a bridge, docker-proxy would
    answer instead). Yields (the namespace, this host's address as seen from it)."""
    tag = uuid.uuid4().hex[:6]
    ns, host_if, ns_if = f"paas-out-{tag}", f"vo{tag}", f"vi{tag}"
    octet = int(tag[:2], 16)
    steps = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
        ["ip", "link", "set", ns_if, "netns", ns],
        ["ip", "addr", "add", f"10.252.{octet}.1/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "netns", "exec", ns, "ip", "addr", "add", f"10.252.{octet}.2/30", "dev", ns_if],
        ["ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up"],
        ["ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", f"10.252.{octet}.1"],
    ]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)
        yield ns, f"10.252.{octet}.1"
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # takes the veth pair along


def test_a_task_on_the_manager_answers_the_router_only(swarm_paas: PaasServer) -> None:
    """Host-mode ports bind every address of the manager: another machine must not reach a task
    past the router (its maintenance page, its TLS, its limits)."""
    paas = swarm_paas
    app, _src = deployed(paas, "swport")
    client = docker.from_env()
    tasks = client.containers.list(filters={"label": [f"paas.app={app}", "com.docker.swarm.task"]})
    assert tasks
    port = next(b["HostPort"] for b in tasks[0].ports["5000/tcp"] if b["HostIp"] == "0.0.0.0")
    assert paas.get(f"{app}.localhost")[1].startswith("version 1")  # the router reaches it
    with outside_machine() as (ns, host):
        curl = ["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                "--max-time", "5"]  # fmt: skip
        tried = subprocess.run([*curl, f"http://{host}:{port}/"], capture_output=True, text=True)
        assert tried.returncode != 0 and tried.stdout in ("", "000"), tried
        # The same machine reaches a port of this host that is not a task's: the wiring works,
        # and the rule closes the task ports, not the host.
        server = http.server.ThreadingHTTPServer((host, 0), http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            control = subprocess.run(
                [*curl, f"http://{host}:{server.server_port}/"], capture_output=True, text=True
            )
        finally:
            server.shutdown()
        assert control.stdout == "200", control


def neighbour_curl(client: docker.DockerClient, network: str, port: int) -> subprocess.CompletedProcess[str]:
    """A container on `network` of this host asking its own bridge's gateway (this host) for
    `port`: the way any app's code on this host could try to reach another app's task."""
    gateway = client.networks.get(network).attrs["IPAM"]["Config"][0]["Gateway"]
    return subprocess.run(
        ["docker", "run", "--rm", "--network", network, "--label", "paas.test=neighbour", stack.LATEST_ALIAS,
         "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
         f"http://{gateway}:{port}/"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_neighbour_container_cannot_reach_a_task_past_the_router(swarm_paas: PaasServer) -> None:
    """From a docker bridge, a connection to this host's own address is answered by docker's
    userland proxy, which DOCKER-USER never sees: a container on docker0, on an app's bridge or
    beside the tasks on docker_gwbridge must still not reach a task's port."""
    paas = swarm_paas
    app, _src = deployed(paas, "swnear")
    client = docker.from_env()
    tasks = client.containers.list(filters={"label": [f"paas.app={app}", "com.docker.swarm.task"]})
    port = int(next(b["HostPort"] for b in tasks[0].ports["5000/tcp"] if b["HostIp"] == "0.0.0.0"))
    bridge = client.networks.create(f"paas-test-near-{uuid.uuid4().hex[:6]}", driver="bridge")
    try:
        for network in ("bridge", bridge.name, "docker_gwbridge"):
            tried = neighbour_curl(client, network, port)
            assert tried.returncode != 0 and tried.stdout in ("", "000"), (network, tried)
        # The same containers still reach this host's other services (the router, say): the
        # rule closes the task ports, not the host.
        server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            control = neighbour_curl(client, bridge.name, server.server_port)
        finally:
            server.shutdown()
        assert control.stdout == "200", control
    finally:
        bridge.remove()
    assert paas.get(f"{app}.localhost")[1].startswith("version 1")  # the router still reaches it


def test_a_failing_check_reverts_to_the_running_release(swarm_paas: PaasServer) -> None:
    paas = swarm_paas
    app, src = deployed(paas, "swfail")
    host = f"{app}.localhost"
    before = {s.id for s in services_of(app)}
    commit(paas, src, {"VERSION": "2\n", "HEALTH": "broken\n"}, "v2 with a broken health endpoint")
    r = push(paas, src)
    assert r.returncode != 0
    assert "failed check 'health endpoint' (GET /health) after 2 attempt(s): HTTP 500" in r.stderr
    assert "version 2 listening on 5000" in r.stderr  # the failing task's log lines
    assert paas.get(host)[1].startswith("version 1 web.1")
    assert {s.id for s in services_of(app)} == before
    releases = json.loads(paas.ssh("releases", app, "--format", "json").stdout)
    assert [x["status"] for x in releases] == ["failed", "current"]


def test_moving_between_schedulers_keeps_serving(swarm_paas: PaasServer) -> None:
    """scheduler:set both ways under load; a docker-local app and a swarm app side by side."""
    paas = swarm_paas
    app, _src = deployed(paas, "swmove")
    other, _ = deployed(paas, "swside")
    host = f"{app}.localhost"
    with Load(paas, host) as load:
        r = paas.ssh("scheduler:set", app, "docker-local")
        assert r.returncode == 0, r.output
        assert f"{app} now runs on docker-local" in r.stdout
        time.sleep(0.5)
    assert load.count > 20 and load.failures == [], f"{len(load.failures)}/{load.count}: {load.failures[:5]}"
    assert services_of(app) == []
    local = docker.from_env().containers.list(filters={"label": [f"paas.app={app}", "paas.role=process"]})
    local = [c for c in local if "com.docker.swarm.service.id" not in c.labels]  # swarm retires its own
    assert len(local) == 1
    assert local[0].attrs["HostConfig"]["PortBindings"]["5000/tcp"][0]["HostIp"] == "127.0.0.1"
    assert ps(paas, app)[0]["node"] == ""
    # Side by side: one on docker-local, one on swarm, both routed.
    assert paas.get(host)[1].startswith("version 1 web.1")
    assert paas.get(f"{other}.localhost")[1].startswith("version 1 web.1")
    assert len(services_of(other)) == 1

    with Load(paas, host) as load:
        r = paas.ssh("scheduler:set", app, "swarm")
        assert r.returncode == 0, r.output
        time.sleep(0.5)
    assert load.count > 20 and load.failures == [], f"{len(load.failures)}/{load.count}: {load.failures[:5]}"
    assert len(services_of(app)) == 1
    left = docker.from_env().containers.list(filters={"label": [f"paas.app={app}", "paas.role=process"]})
    assert [c.name for c in left if "com.docker.swarm.service.id" not in c.labels] == []
    events = paas.ssh("events", "--app", app).stdout
    assert "scheduler:set" in events


def test_bad_scheduler_names_are_one_clear_line(swarm_paas: PaasServer) -> None:
    paas = swarm_paas
    app, _src = deployed(paas, "swbad")
    r = paas.ssh("scheduler:set", app, "kubernetes")
    assert r.returncode != 0
    (line,) = r.stderr.strip().splitlines()
    assert "unknown scheduler 'kubernetes': use one of docker-local, swarm" in line
    assert "Traceback" not in r.output

    # ps:stop removes the services and the route; ps:start brings them back; destroy leaves nothing.
    assert paas.ssh("ps:stop", app).returncode == 0
    assert services_of(app) == [] and paas.get(f"{app}.localhost")[0] == 404
    assert paas.ssh("ps:start", app).returncode == 0
    assert len(services_of(app)) == 1 and paas.get(f"{app}.localhost")[0] == 200
    assert paas.ssh("apps:destroy", app, "--confirm", app).returncode == 0
    assert services_of(app) == []
    assert docker.from_env().networks.list(filters={"label": f"paas.app={app}"}) == []


def test_reconcile_follows_a_task_that_swarm_replaced(swarm_paas: PaasServer) -> None:
    """A task killed under the app: swarm starts another (a new port); the route follows it."""
    paas = swarm_paas
    app, _src = deployed(paas, "swheal")
    host = f"{app}.localhost"
    client = docker.from_env()
    (task,) = client.containers.list(filters={"label": [f"paas.app={app}", "com.docker.swarm.task"]})
    task.kill()

    def serving_again() -> bool:
        try:
            return paas.get(host)[0] == 200 and ps(paas, app)[0]["restarts"] >= 1
        except OSError:
            return False

    wait_for(serving_again, timeout=60, interval=0.5)
    assert paas.get(host)[1].startswith("version 1 web.1")


def test_a_crash_looping_swarm_process_is_one_event(swarm_paas: PaasServer) -> None:
    """Swarm replaces a task that exits with a new one (no restart count grows): the reconcile
    pass counts the slot's ended tasks and records one `ps:crash-loop`. Before, only
    docker-local's restart counts were read and a swarm crash loop went unseen."""
    paas = swarm_paas
    app, src = deployed(paas, "swloop")
    procfile = "web: python3 server.py\nworker: sh -c 'echo worker up; sleep 4; exit 3'\n"
    commit(paas, src, {"Procfile": procfile}, "a worker that dies after its checks")
    pushed = push(paas, src)
    assert pushed.returncode == 0, pushed.output
    scaled = paas.ssh("ps:scale", app, "worker=1", timeout=180)
    assert scaled.returncode == 0, scaled.output

    def loops() -> list[str]:
        out = paas.ssh("events", "--app", app, "-n", "50").stdout
        return [line for line in out.splitlines() if "ps:crash-loop" in line]

    found = wait_for(loops, timeout=150, interval=2)
    assert found and "worker.1 restarted" in found[0], paas.ssh("events", "--app", app, "-n", "50").stdout
    time.sleep(15)  # more restarts within the same loop: still one event
    assert len(loops()) == 1, loops()
    assert paas.get(f"{app}.localhost")[0] == 200  # the web process serves through it


# ---------------------------------------------------------------- three nodes: this host + 2 simulated


def running_nodes(paas: PaasServer, app: str) -> dict[str, str]:
    """dyno -> node of every running process."""
    return {p["dyno"]: p["node"] for p in ps(paas, app) if p["state"] == "running"}


def test_web_4_spreads_over_nodes_and_survives_deploys_drains_and_a_dead_node(
    cluster_paas: PaasServer,
    swarm_cluster: SwarmCluster,
) -> None:
    paas, cluster = cluster_paas, swarm_cluster
    app, src = deployed(paas, "sw3")
    host = f"{app}.localhost"
    r = paas.ssh("apps:scale", app, "web=4")
    assert r.returncode == 0, r.output
    placed = running_nodes(paas, app)
    assert sorted(placed) == ["web.1", "web.2", "web.3", "web.4"]
    assert len(set(placed.values())) >= 2, placed
    ours = {n.name for n in cluster.nodes} | {docker.from_env().info()["Name"]}
    assert set(placed.values()) <= ours
    seen = {paas.get(host)[1].split()[2] for _ in range(60)}
    assert seen == {"web.1", "web.2", "web.3", "web.4"}  # every task answers through the router
    # enter reaches processes on this host only: one on another node gets one clear line.
    away = next(d for d, n in sorted(placed.items()) if n != docker.from_env().info()["Name"])
    r = paas.ssh("enter", app, away, "--", "true")
    assert r.returncode == 1, r.output
    assert f"{app} {away} runs on node {placed[away]}: enter reaches processes on this host only" in r.stderr

    # A rolling deploy under load fails no request.
    commit(paas, src, {"VERSION": "2\n"}, "v2")
    with Load(paas, host) as load:
        r = push(paas, src)
        assert r.returncode == 0, r.output
        time.sleep(1)
    assert load.count > 50 and load.failures == [], f"{len(load.failures)}/{load.count}: {load.failures[:5]}"
    assert paas.get(host)[1].startswith("version 2")

    # nodes:drain moves the processes off a node without failed requests.
    placed = running_nodes(paas, app)
    victim = next(n for n in cluster.nodes if n.name in placed.values())
    with Load(paas, host) as load:
        r = paas.ssh("nodes:drain", victim.name)
        assert r.returncode == 0, r.output

        def moved_off() -> bool:
            now = running_nodes(paas, app)
            return len(now) == 4 and victim.name not in now.values()

        assert wait_for(moved_off, timeout=120, interval=1), ps(paas, app)
        time.sleep(2)
    assert load.failures == [], f"{len(load.failures)}/{load.count}: {load.failures[:5]}"
    assert paas.ssh("nodes:activate", victim.name).returncode == 0
    # Spread again over the nodes (a restart places the tasks anew).
    assert paas.ssh("ps:restart", app).returncode == 0

    # A node dies: the app keeps serving and is back to 4 running processes within 60 s.
    placed = running_nodes(paas, app)
    victim = next(n for n in cluster.nodes if n.name in placed.values())
    with Load(paas, host) as load:
        killed = time.monotonic()
        victim.kill()

        def four_elsewhere() -> bool:
            now = running_nodes(paas, app)
            return len(now) == 4 and victim.name not in now.values()

        assert wait_for(four_elsewhere, timeout=60, interval=1), ps(paas, app)
        recovered = time.monotonic() - killed
        time.sleep(2)
    served = load.count - len(load.failures)
    assert served > 20 and paas.get(host)[0] == 200, load.failures[:5]
    assert recovered < 60
    # ... and reconcile copes with it coming back: still 4, still serving, routes only to live tasks.
    victim.start()
    assert wait_for(lambda: cluster.state(victim.name) == "ready", timeout=120, interval=1)
    time.sleep(5)
    assert len(running_nodes(paas, app)) == 4
    with Load(paas, host) as load:
        time.sleep(3)
    assert load.failures == [], load.failures[:5]


def test_the_manager_closes_the_nodes_task_ports_to_its_own_containers(
    cluster_paas: PaasServer, swarm_cluster: SwarmCluster
) -> None:
    """Every node that joined is in the manager's guard (swarm_cluster.NODES_TABLE) within a
    reconcile pass: a container there leaves masqueraded as the manager's address, the one
    address a node lets open its task ports (for the router). The attack itself runs in
    test_egress.py over a routed network: here docker's own bridge isolation already stops
    containers on other bridges from reaching the simulated nodes on docker0, which real hosts
    elsewhere do not have."""
    wanted = {node.address for node in swarm_cluster.nodes}
    assert wait_for(lambda: wanted <= guarded_nodes(), 20), (wanted, guarded_nodes())
    table = subprocess.run(["nft", "list", "table", "ip", NODES_TABLE], capture_output=True, text=True).stdout
    assert "32768-60999" in table and Settings.network_pool in table, table  # its task ports, its pool
