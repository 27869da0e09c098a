"""Simulated hosts for the Swarm tests: containers running their own dockerd, joined to this
host's swarm with exactly the lines `nodes:join-command` prints.

A node container grows from the stack image plus Debian's docker.io (built locally, cached by
the hash of its recipe like the service images). `--privileged` fails on these machines, so the
container gets the few capabilities a dockerd needs, and its PID 1 (`paas-node-init`) first
re-mounts each cgroup v1 controller read-write, then runs dockerd in a restart loop (no systemd
there, like many small real hosts). /var/lib/docker is a docker volume, so the inner dockerd
uses overlay2 on the host's disk instead of vfs on top of overlayfs.

Its session fixtures are registered for the whole suite (tests/conftest.py's pytest_plugins):
`swarm_cluster` yields the `SwarmCluster` below; `cluster_paas` is the session's one server with
the swarm scheduler whose nodes joined with its lines (one registry, one stack push);
`swarm_server(root)` makes another, on this host alone.

    cluster.manager_address           the manager's advertise address (docker0's, 172.17.0.1)
    cluster.nodes                     the simulated nodes (2), each a `SimulatedNode`
    cluster.join(server)              on each node, the lines `nodes:join-command <its name>` printed
    node.name / node.address          its hostname (the swarm node's name) and its IP
    node.run_lines(lines)             run shell lines as root on it (what an operator pastes)
    node.docker(*args)                the docker CLI of the node's own dockerd
    node.kill() / node.start()        the host dies (its container is killed) / comes back
"""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from paas.buildpacks.service_images import ServiceImageRecipe, ensure_image
from paas.plugins import plugins
from paas.settings import Settings
from tests.e2e.conftest import PaasServer, free_port, shutdown, wait_for

plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
from paas_plugins.swarm.scheduler import registry  # noqa: E402
from paas_plugins.swarm.scheduler import swarm as swarm_scheduler  # noqa: E402
from paas_plugins.swarm.scheduler import swarm_cluster as cluster_ops  # noqa: E402
from paas_plugins.swarm.settings import swarm_settings  # noqa: E402

NODE_COUNT = 2
NODE_LABEL = "paas.test.swarm-node"  # on node containers and volumes: what teardown removes

# PID 1 of a simulated host. Docker gives the container read-only cgroup v1 mounts and /proc/sys;
# dockerd needs them writable. Then dockerd runs in a loop (a host whose engine crashes gets it back), and
# SIGTERM stops it cleanly (a stopped node leaves the swarm's view as `down`). At boot it runs
# the firewall script the join lines installed, as a real host's boot does (systemd unit or
# its own boot scripts): a container's restart is a reboot, its iptables rules are gone.
NODE_INIT = r"""#!/bin/sh
set -u
# A real host's /proc/sys is writable: dockerd without its userland proxy (what the join lines
# ask for) turns on route_localnet for its bridges.
mount -o remount,rw /proc/sys 2>/dev/null || echo "paas-node-init: cannot remount /proc/sys" >&2
if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
  mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
  awk '$9 == "cgroup" { print $5, $NF }' /proc/self/mountinfo | while read -r dir opts; do
    opts=${opts#rw,}
    umount "$dir" && mount -t cgroup -o "$opts" cgroup "$dir" \
      || mount -t cgroup -o "none,$opts" cgroup "$dir" || echo "paas-node-init: cannot remount $dir" >&2
  done
fi
export DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1
running=1
child=
trap 'running=0; [ -n "$child" ] && kill -TERM "$child"' TERM INT
boot=1
while [ "$running" = 1 ]; do
  rm -f /var/run/docker.pid
  dockerd --storage-driver overlay2 >>/var/log/dockerd.log 2>&1 &
  child=$!
  if [ "$boot" = 1 ] && [ -x /usr/local/sbin/paas-node-firewall ]; then
    # this host's boot scripts: what the join lines installed runs again once docker is up
    (until docker info >/dev/null 2>&1; do sleep 0.2; done; /usr/local/sbin/paas-node-firewall) &
  fi
  boot=0
  wait "$child"
  [ "$running" = 1 ] && sleep 1
done
wait
"""

NODE_RECIPE = ServiceImageRecipe(
    kind="swarm-node",
    packages=("docker.io", "docker-cli", "iptables", "iproute2", "procps"),
    files=(("/usr/local/sbin/paas-node-init", 0o755, NODE_INIT),),
    entrypoint=("/usr/local/sbin/paas-node-init",),
)

NODE_RUN_OPTIONS = {
    "cap_add": ["SYS_ADMIN", "NET_ADMIN"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "sysctls": {"net.ipv6.conf.all.disable_ipv6": "0"},
    "init": True,  # tini reaps what dockerd's children leave behind
}


def node_image(client: docker.DockerClient) -> str:
    """The simulated host's image, built on first use (about a minute) and reused by tag."""
    scratch = Path(tempfile.gettempdir()) / "paas-swarm-hosts"  # only its build lock lives here
    return ensure_image(Settings(data_dir=scratch), client, NODE_RECIPE, lambda _line: None)


@dataclass
class SimulatedNode:
    """One simulated host: a container on docker0 with its own dockerd."""

    client: docker.DockerClient
    name: str
    image: str
    volume: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def container(self):  # type: ignore[no-untyped-def]
        return self.client.containers.get(self.name)

    @property
    def address(self) -> str:
        c = self.container
        return c.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]

    def create(self) -> None:
        self.client.volumes.create(self.volume, labels=self.labels)
        self.client.containers.run(
            self.image,
            name=self.name,
            hostname=self.name,
            detach=True,
            labels=self.labels,
            volumes={self.volume: {"bind": "/var/lib/docker", "mode": "rw"}},
            **NODE_RUN_OPTIONS,
        )
        self.wait_engine()

    def wait_engine(self, timeout: float = 60) -> None:
        """Until the node's own dockerd answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exec("docker info >/dev/null 2>&1").returncode == 0:
                return
            time.sleep(0.5)
        log = self.exec("tail -n 30 /var/log/dockerd.log").stdout
        raise RuntimeError(f"dockerd did not start on {self.name}:\n{log}")

    def exec(self, script: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """`sh -c script` as root on the node (the docker CLI: no SDK call streams like a shell)."""
        return subprocess.run(
            ["docker", "exec", self.name, "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run_lines(self, lines: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """The lines as an operator pastes them into a root shell: one script, stop at the first error."""
        return self.exec("set -e\n" + "\n".join(lines) + "\n", timeout=timeout)

    def docker(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "exec", self.name, "docker", *args], capture_output=True, text=True, timeout=timeout
        )

    def kill(self) -> None:
        """The host dies: no goodbye to the swarm."""
        self.container.kill()

    def start(self) -> None:
        """The host comes back (its dockerd rejoins the swarm by itself)."""
        self.container.start()
        self.wait_engine()

    def remove(self) -> None:
        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        try:
            self.client.volumes.get(self.volume).remove(force=True)
        except docker.errors.NotFound:
            pass


@dataclass
class SwarmCluster:
    """This host's dockerd (the manager) and the simulated nodes, made once per test session."""

    client: docker.DockerClient
    manager_address: str
    nodes: list[SimulatedNode]
    node_labels: dict[str, str] = field(default_factory=dict)  # given to a node that joins again

    def node(self, name: str) -> SimulatedNode:
        return next(n for n in self.nodes if n.name == name)

    def swarm_node(self, name: str) -> dict | None:
        """The manager's view of a node (by hostname), None if it has none."""
        for n in self.client.api.nodes():
            if n["Description"]["Hostname"] == name:
                return n
        return None

    def state(self, name: str) -> str | None:
        n = self.swarm_node(name)
        return n["Status"]["State"] if n else None

    def join(self, server: PaasServer, timeout: float = 90) -> dict[str, list[str]]:
        """Run the lines `nodes:join-command <node>` prints (a registry certificate of its own in
        each), verbatim, on each simulated node, then wait until the manager sees each one ready.
        Safe to repeat (a joined node only gets new registry files). Returns the lines by node."""
        printed: dict[str, list[str]] = {}
        for node in self.nodes:
            out = server.ssh("nodes:join-command", node.name)
            if out.returncode != 0:
                raise RuntimeError(f"nodes:join-command {node.name} failed: {out.output}")
            printed[node.name] = out.stdout.splitlines()
            ran = node.run_lines(printed[node.name])
            if ran.returncode != 0:
                raise RuntimeError(f"the join lines failed on {node.name}: {ran.stdout}{ran.stderr}")
        for node in self.nodes:
            if not wait_for(lambda n=node: self.state(n.name) == "ready", timeout=timeout, interval=0.5):
                raise RuntimeError(f"{node.name} did not become ready: {self.state(node.name)}")
        return printed

    def rejoin(self, node: SimulatedNode, lines: list[str], timeout: float = 90) -> None:
        """A node the swarm forgot (nodes:remove) joins again: it leaves its old swarm, then runs
        the same printed lines."""
        node.docker("swarm", "leave", "--force")
        ran = node.run_lines(lines)
        if ran.returncode != 0:
            raise RuntimeError(f"the join lines failed on {node.name}: {ran.stdout}{ran.stderr}")
        if not wait_for(lambda: self.state(node.name) == "ready", timeout=timeout, interval=0.5):
            raise RuntimeError(f"{node.name} did not become ready again: {self.state(node.name)}")
        for key, value in self.node_labels.items():  # what the cluster's server places work by
            label_node(self.client, self.swarm_node(node.name)["ID"], key, value)

    def restore(self, timeout: float = 90) -> None:
        """Every node running, ready and active again (after a test killed or drained one)."""
        for node in self.nodes:
            if not node.container.attrs["State"]["Running"]:
                node.start()
            raw = self.swarm_node(node.name)
            if raw and raw["Spec"].get("Availability") != "active":
                spec = dict(raw["Spec"], Availability="active")
                self.client.api.update_node(raw["ID"], raw["Version"]["Index"], spec)
        for node in self.nodes:
            wait_for(lambda n=node: self.state(n.name) in ("ready", None), timeout=timeout, interval=0.5)

    def forget(self) -> None:
        """Remove the simulated nodes: their containers, volumes and their entries in the swarm."""
        for node in self.nodes:
            node.remove()
        for node in self.nodes:  # forced: no need to wait until the manager notices they are gone
            raw = self.swarm_node(node.name)
            if raw:
                try:
                    self.client.api.remove_node(raw["ID"], force=True)
                except docker.errors.APIError:
                    pass


def make_cluster(client: docker.DockerClient) -> SwarmCluster:
    """The manager (this host's dockerd, put in swarm mode if it is not) plus NODE_COUNT simulated
    nodes, started but not joined: `cluster.join(server)` joins them with that server's lines.
    The caller ends it with `cluster.forget()`."""
    address = cluster_ops.default_advertise_address(client)
    cluster_ops.ensure_swarm(client, address)
    image = node_image(client)
    token = uuid.uuid4().hex[:6]
    nodes = [
        SimulatedNode(
            client,
            name=f"paas-node-{token}-{i}",
            image=image,
            volume=f"paas-node-{token}-{i}-docker",
            labels={NODE_LABEL: token},
        )
        for i in range(1, NODE_COUNT + 1)
    ]
    cluster = SwarmCluster(client, address, nodes)
    try:
        for node in nodes:
            node.create()
    except BaseException:
        cluster.forget()
        raise
    return cluster


@pytest.fixture(scope="session")
def swarm_cluster() -> Iterator[SwarmCluster]:
    """make_cluster's nodes for the whole session."""
    cluster = make_cluster(docker.from_env())
    try:
        yield cluster
    finally:
        addresses = set()
        for node in cluster.nodes:
            try:
                addresses.add(node.address)
            except docker.errors.DockerException:
                pass  # a node already gone
        cluster.forget()
        # The servers' reconcile passes guarded the nodes' task ports; the nodes are gone now.
        cluster_ops.guard_node_ports(
            set(), swarm_settings(Settings()).app_ports, Settings().network_pool, gone=addresses
        )
        cluster_ops.unguard_swarm_ports()  # and the swarm's own ports (the engine is shared)


ADVERTISE = "172.17.0.1"  # docker0: what simulated nodes reach this host at


def ensure_single_node_swarm(client: docker.DockerClient) -> None:
    """The host dockerd as a swarm manager (never left: other tests may share the swarm)."""
    if not swarm_scheduler.is_manager(client):
        client.swarm.init(advertise_addr=ADVERTISE)


def remove_swarm_objects(server: PaasServer) -> None:
    """This test server's services first (their tasks would come back), then what conftest removes."""
    client = docker.from_env()
    instance = Settings(data_dir=server.data_dir).instance_id
    services = client.services.list(filters={"label": f"paas.instance={instance}"})
    for svc in services:
        try:
            svc.remove()
        except docker.errors.NotFound:
            pass

    def tasks_gone() -> bool:
        label = f"paas.instance={instance}"
        return not client.containers.list(
            ignore_removed=True, filters={"label": [label, "com.docker.swarm.task"]}
        )

    if services:
        wait_for(tasks_gone, timeout=60)


def label_node(client: docker.DockerClient, node_id: str, key: str, value: str | None) -> None:
    """Add (or, with None, remove) a label of a swarm node, retrying on a concurrent update."""
    for _ in range(10):
        raw = client.api.inspect_node(node_id)
        spec = raw["Spec"]
        labels = dict(spec.get("Labels") or {})
        if value is None:
            labels.pop(key, None)
        else:
            labels[key] = value
        try:
            client.api.update_node(node_id, raw["Version"]["Index"], {**spec, "Labels": labels})
            return
        except docker.errors.APIError as exc:
            if "update out of sequence" not in str(exc):
                raise
    raise RuntimeError(f"cannot label node {node_id}")


@contextmanager
def swarm_server(root: Path, cluster: SwarmCluster | None = None) -> Iterator[PaasServer]:
    """A server whose new apps run on the swarm, with a registry of its own; with `cluster`, its
    simulated nodes joined with the lines this server's `nodes:join-command` printed."""
    client = docker.from_env()
    ensure_single_node_swarm(client)
    server = PaasServer(root)
    label = f"paas-test-{uuid.uuid4().hex[:6]}"
    server.env["PAAS_SCHEDULER"] = "swarm"
    # PAAS_BOOT_TIMEOUT stays the suite's 30 s on every node: a new node pulls the stack while it
    # joins, and a pull never counts against a process's boot time.
    server.env["PAAS_REGISTRY_PORT"] = str(free_port())
    # The host's swarm is shared with other tests' simulated nodes, which trust only their own
    # server's registry: this server's apps run on this host and on its own nodes only.
    server.env["PAAS_SWARM_CONSTRAINTS"] = f"node.labels.{label}==yes"
    label_node(client, client.info()["Swarm"]["NodeID"], label, "yes")
    try:
        server.start_with_key()
        if cluster is not None:
            cluster.node_labels[label] = "yes"
            cluster.join(server)
            for node in cluster.nodes:
                label_node(client, cluster.swarm_node(node.name)["ID"], label, "yes")
        yield server
    finally:
        try:
            if server.proc and server.proc.poll() is None:
                server.stop()  # no reconcile recreating what we remove
        finally:
            remove_swarm_objects(server)
            shutdown(server)
            settings = Settings(
                data_dir=server.data_dir, extra={"PAAS_REGISTRY_PORT": server.env["PAAS_REGISTRY_PORT"]}
            )
            registry.remove_registry(settings, client, ADVERTISE)
            label_node(client, client.info()["Swarm"]["NodeID"], label, None)
            if cluster is not None:
                cluster.node_labels.pop(label, None)


@pytest.fixture(scope="session")
def cluster_paas(
    tmp_path_factory: pytest.TempPathFactory, swarm_cluster: SwarmCluster
) -> Iterator[PaasServer]:
    """A server whose new apps run on the swarm, its nodes joined with the lines it printed: one
    for the session (test_swarm.py's 3-node tests and test_swarm_nodes.py), so the registry is
    started and the stack pushed and pulled once."""
    with swarm_server(tmp_path_factory.mktemp("swarm3"), swarm_cluster) as server:
        yield server
