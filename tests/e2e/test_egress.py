"""Where a build and an app may connect (paas/scheduler/egress.py), attacked from a Dockerfile
`RUN` step and from a `run` container: a metadata service on a link-local address (another
machine here: a network namespace routed from this host, as a cloud server's is), a service on
this host's own address, and a machine in a private range the operator denies. The internet
stays reachable. And the task ports a swarm node opens to this host (the manager) only.

Before: every one of them answered 200 (a cloud server's IAM role was one `curl` away)."""

from __future__ import annotations

import dataclasses
import ipaddress
import shlex
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pytest
from docker.models.networks import Network

from paas.buildpacks import stack
from paas.core import networks
from paas.plugins import plugins
from paas.scheduler import egress
from paas.settings import Settings
from tests.e2e.conftest import PaasServer, docker_rule_ahead, free_port, shutdown, unique_app, wait_for

plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
from paas_plugins.swarm.scheduler import swarm_cluster  # noqa: E402

METADATA = "169.254.169.254"
METADATA_NS = "paas-metadata"
PRIVATE = "10.253.7.2"  # a machine on the operator's private network
PRIVATE_NS = "paas-private"
NODE_NS = "paas-swnode"
# http.server's own bind looks its address up in DNS, which a namespace cannot reach: seconds.
SERVE = """
import http.server, socketserver, sys
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "machine", self.server_address[1]
Server((sys.argv[1], int(sys.argv[2])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


class Secret(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"role credentials\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(address: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((address, port), Secret)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _machine(ns: str, address: str, host_side: str, port: int = 80) -> subprocess.Popen:
    """Another machine: a network namespace holding `address` behind a veth pair, routed from
    this host (so a container's connection to it is forwarded, as to any machine elsewhere), with
    an HTTP server on port 80."""
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    outer, inner = f"{ns[:10]}-h", f"{ns[:10]}-n"
    steps = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", outer, "type", "veth", "peer", "name", inner],
        ["ip", "link", "set", inner, "netns", ns],
        ["ip", "addr", "add", f"{host_side}/32", "dev", outer],
        ["ip", "link", "set", outer, "up"],
        ["ip", "route", "add", f"{address}/32", "dev", outer],
        ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
        ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{address}/32", "dev", inner],
        ["ip", "netns", "exec", ns, "ip", "link", "set", inner, "up"],
        ["ip", "netns", "exec", ns, "ip", "route", "add", "default", "dev", inner],
    ]
    for step in steps:
        subprocess.run(step, check=True, capture_output=True)
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", SERVE, address, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def targets() -> Iterator[dict[str, str]]:
    """The three places no container of ours may reach, each answering 200 to this host."""
    metadata = _machine(METADATA_NS, METADATA, "169.254.169.1")
    private = _machine(PRIVATE_NS, PRIVATE, "10.253.7.1")
    host_port = free_port()
    on_host = _serve("0.0.0.0", host_port)  # like the dashboard, the registry, a database
    gateway = docker.from_env().networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    try:
        found = {
            "metadata": f"http://{METADATA}/",
            "host": f"http://{gateway}:{host_port}/",  # one of this host's own addresses
            "private": f"http://{PRIVATE}/",
        }
        for url in found.values():  # each answers this host: only containers are kept away
            assert wait_for(lambda u=url: _status(u) == "200", timeout=20), url
        yield found
    finally:
        on_host.shutdown()
        for proc, ns in ((metadata, METADATA_NS), (private, PRIVATE_NS)):
            proc.kill()
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            subprocess.run(["ip", "link", "del", f"{ns[:10]}-h"], capture_output=True)


def _status(url: str) -> str:
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", url]
    return subprocess.run(curl, capture_output=True, text=True).stdout


def _probe_script(targets: dict[str, str]) -> str:
    """One line per target: `<name>=<HTTP status>` (000: no answer)."""
    lines = [
        f"echo {name}=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 {url} || true)"
        for name, url in targets.items()
    ]
    pypi = "https://pypi.org/simple/"  # -k: TLS is intercepted here; reaching it is what counts
    lines.append(f"echo internet=$(curl -ks -o /dev/null -w '%{{http_code}}' --max-time 20 {pypi} || true)")
    return "; ".join(lines)


def _answers(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        line = line.removeprefix("remote:").strip()
        name, sep, code = line.partition("=")
        if sep and name in ("metadata", "host", "private", "internet") and code.isdigit():
            found[name] = code
    return found


def _check(found: dict[str, str]) -> None:
    assert found.get("internet") == "200", found  # package mirrors and APIs stay reachable
    assert found.get("metadata") == "000", found
    assert found.get("host") == "000", found
    assert found.get("private") == "000", found


def test_builds_and_apps_reach_the_internet_and_nothing_of_ours(
    tmp_path: Path, targets: dict[str, str]
) -> None:
    (tmp_path / "srv").mkdir()
    paas = PaasServer(tmp_path / "srv")
    paas.env["PAAS_EGRESS_DENY"] = "10.253.0.0/16"
    try:
        paas.start_with_key()
        app = unique_app("egress")
        src = tmp_path / "src"
        src.mkdir()
        (src / "Dockerfile").write_text(
            f"FROM paas/stack:latest\nRUN {_probe_script(targets)}\nCMD python3 -m http.server $PORT\n"
        )
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "probe"]):
            assert paas.git(src, *args).returncode == 0
        assert paas.git(src, "remote", "add", "paas", f"paas:{app}").returncode == 0
        pushed = paas.git(src, "push", "paas", "main")
        assert pushed.returncode == 0, pushed.output
        _check(_answers(pushed.stderr))

        # The app's own containers (a `run` one-off here) are held to the same.
        ran = paas.ssh("run", app, "sh", "-c", shlex.quote(_probe_script(targets)), timeout=120)
        assert ran.returncode == 0, ran.output
        _check(_answers(ran.stdout))
    finally:
        shutdown(paas)


def test_the_policy_holds_when_docker_leaves_a_network_ahead_of_docker_user(
    tmp_path: Path, targets: dict[str, str]
) -> None:
    """Docker says rules in DOCKER-USER come before its own, and puts the jump to DOCKER-USER back
    on top of FORWARD whenever it makes a network. But while networks are made side by side (two
    pushes, two servers, a restore), a network's own `-i br-… ! -o br-… -j ACCEPT` can end up above
    that jump and stay there until the next network is made (seen here: a 200-app bench, and the
    full suite, where a `run` one-off reached the metadata service and the private range). Every
    container on that network then left past the policy. Here that state is made by hand, with
    docker's own rule for a network from the pool; the server's policy must hold all the same.

    Before: metadata=200 and private=200 (the chains hang off DOCKER-USER, which is skipped)."""
    (tmp_path / "srv").mkdir()
    paas = PaasServer(tmp_path / "srv")
    # A pool of its own, so a table of its own: the others' servers never put this one back.
    paas.env["PAAS_NETWORK_POOL"] = OWN_POOL
    network, _ = _pool_network(OWN_POOL)
    try:
        paas.start_with_key()
        probe = ["sh", "-c", _probe_script(targets)]
        run = ["docker", "run", "--rm", "--network", network.name, "--label", "paas.test=egress"]
        with docker_rule_ahead(network):
            done = subprocess.run(
                [*run, stack.LATEST_ALIAS, *probe], capture_output=True, text=True, timeout=120
            )
        assert done.returncode == 0, done.stderr
        found = _answers(done.stdout)
        assert found.get("internet") == "200", found  # the policy's own way out stays open
        assert found.get("metadata") == "000", found
        assert found.get("private") == "000", found
        assert found.get("host") == "000", found

        # A flushed ruleset loses the table: the server's own check (every 30 s) writes it again.
        subprocess.run(["nft", "delete", "table", "ip", _own_table()], check=True)
        assert wait_for(lambda: "ip daddr @refused reject" in _nft_table(), timeout=45), _nft_table()
        put_back = "the egress policy was incomplete: put back"
        assert wait_for(lambda: put_back in paas.log_path.read_text(), timeout=10)
    finally:
        network.remove()
        shutdown(paas)


OWN_POOL = "10.197.0.0/16"


def _own_table() -> str:
    return egress.table_name(dataclasses.replace(Settings.from_env(), network_pool=OWN_POOL))


def _nft_table() -> str:
    listing = ["nft", "list", "table", "ip", _own_table()]
    return subprocess.run(listing, capture_output=True, text=True).stdout


def _pool_network(pool: str = Settings.network_pool) -> tuple[Network, ipaddress.IPv4Network]:
    """A network from the pool, as apps get theirs: the allocator's free /24 under its engine
    lock (a fixed subnet may be one a running server's app network holds already)."""
    client = docker.from_env()
    name = f"paas-test-guard-{uuid.uuid4().hex[:6]}"
    lock = Settings.engine_locks_dir / "networks.lock"  # the one every server takes
    networks.ensure(client, name, "guardtest", "guard", pool, lock)
    network = client.networks.get(name)
    return network, ipaddress.ip_network(network.attrs["IPAM"]["Config"][0]["Subnet"])


def firewall() -> str:
    """What the manager's guard holds, for a failure's message."""
    listings = [
        ["iptables", "-w", "-S", "FORWARD"],
        ["nft", "list", "table", "ip", swarm_cluster.NODES_TABLE],
    ]
    return "".join(subprocess.run(cmd, capture_output=True, text=True).stdout for cmd in listings)


def test_a_container_cannot_open_the_task_ports_a_node_opens_to_this_host() -> None:
    """A swarm node lets its task ports answer the manager's address only (for the router). A
    container on the manager leaves masqueraded as that very address: before, it reached every
    other tenant's tasks on the nodes, past the router's maintenance page, TLS and headers. Here
    the node is a network namespace routed from this host (a machine elsewhere), whose firewall
    is the join lines' rule; the container is on a network from the pool, as apps are."""
    node, manager, port, ports = "198.18.7.2", "198.18.7.1", 40001, (32768, 60999)
    server = _machine(NODE_NS, node, manager, port)
    subprocess.run(
        ["ip", "netns", "exec", NODE_NS, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", str(port),
         "!", "-s", manager, "-j", "DROP"],
        check=True,
    )  # fmt: skip
    network, subnet = _pool_network()
    url = f"http://{node}:{port}/"
    other = subprocess.Popen(  # a service of the node's that is no task port
        ["ip", "netns", "exec", NODE_NS, sys.executable, "-c", SERVE, node, "8080"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # A container whose own address is also guarded: a node's address, as a container on this
    # host may have one. The replies it gets come to an ephemeral port, in the task ports' range.
    mine = str(subnet[10])

    def from_a_container(target: str = url) -> str:
        curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", target]
        run = ["docker", "run", "--rm", "--network", network.name, "--ip", mine, "--label", "paas.test=guard"]
        done = subprocess.run([*run, stack.LATEST_ALIAS, *curl], capture_output=True, text=True)
        return done.stdout or done.stderr.strip()

    try:
        # Answers that must come: asked again while a loaded machine is slow to give them.
        assert wait_for(lambda: _status(url) == "200", timeout=20)  # this host (the router) gets in
        assert wait_for(lambda: from_a_container() == "200", timeout=30), from_a_container()  # the hole
        swarm_cluster.guard_node_ports({node, mine}, ports, Settings.network_pool)
        assert from_a_container() == "000", firewall()
        with docker_rule_ahead(network):  # as docker leaves a network made beside another
            assert from_a_container() == "000", firewall()
        assert wait_for(lambda: _status(url) == "200", timeout=20)  # the router's way in stays open
        # Only new connections are held: the answers to the container's own connections come back.
        assert wait_for(lambda: _status(f"http://{node}:8080/") == "200", timeout=20)
        answer = wait_for(lambda: from_a_container(f"http://{node}:8080/") == "200", timeout=30)
        assert answer, (from_a_container(f"http://{node}:8080/"), firewall())
    finally:
        swarm_cluster.guard_node_ports(set(), ports, Settings.network_pool, gone={node, mine})
        network.remove()
        server.kill()
        other.kill()
        subprocess.run(["ip", "netns", "del", NODE_NS], capture_output=True)
        subprocess.run(["ip", "link", "del", f"{NODE_NS[:10]}-h"], capture_output=True)


SWARM_NODE_NS = "paas-swport"
# Whatever reaches the node's VXLAN port, written down by the node (one line per datagram).
RECORD = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, _ = s.recvfrom(65535)
    with open(sys.argv[3], "ab") as out:
        out.write(data + b"\\n")
"""


def test_a_container_cannot_reach_the_swarm_ports_of_a_node(tmp_path: Path) -> None:
    """A swarm node takes gossip (7946) and VXLAN frames (4789/udp) from the other nodes, the
    manager among them; a container on the manager leaves masqueraded as the manager's address.
    Before, app code there could speak gossip to every node and inject frames into any overlay
    (a VXLAN packet names its network by number, nothing else). The node here is a network
    namespace routed from this host; this host's own traffic to it (the swarm's) still passes."""
    node, manager, ports = "198.18.9.2", "198.18.9.1", (32768, 60999)
    gossip = _machine(SWARM_NODE_NS, node, manager, 7946)  # TCP 7946: an HTTP server stands in
    frames = tmp_path / "frames"
    vxlan = subprocess.Popen(
        ["ip", "netns", "exec", SWARM_NODE_NS, sys.executable, "-c", RECORD, node, "4789", str(frames)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    network, _ = _pool_network()

    def from_a_container(command: list[str]) -> str:
        run = [
            "docker",
            "run",
            "--rm",
            "--network",
            network.name,
            "--label",
            "paas.test=guard",
            stack.LATEST_ALIAS,
        ]
        done = subprocess.run([*run, *command], capture_output=True, text=True)
        return done.stdout or done.stderr.strip()

    def tcp() -> str:
        return from_a_container(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", f"http://{node}:7946/"]
        )

    def frame(tag: str) -> bool:
        udp = "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
        send = f"import socket; {udp}.sendto(b'{tag}', ('{node}', 4789))"
        for _ in range(3):  # UDP: a datagram may be lost on a loaded machine
            from_a_container(["python3", "-c", send])
        return wait_for(lambda: frames.exists() and tag.encode() in frames.read_bytes(), timeout=3)

    try:
        assert wait_for(lambda: _status(f"http://{node}:7946/") == "200", timeout=20)  # this host gets in
        assert wait_for(lambda: tcp() == "200", timeout=30), tcp()  # the hole: gossip's port
        assert wait_for(lambda: frame("before"), timeout=30)  # and a frame into the node's VXLAN port
        swarm_cluster.guard_node_ports({node}, ports, Settings.network_pool)
        assert tcp() == "000", firewall()
        assert not frame("after"), firewall()
        assert wait_for(lambda: _status(f"http://{node}:7946/") == "200", timeout=20)  # the swarm's own
        with docker_rule_ahead(network):  # as docker leaves a network made beside another
            assert tcp() == "000", firewall()
            assert not frame("ahead"), firewall()
    finally:
        swarm_cluster.guard_node_ports(set(), ports, Settings.network_pool, gone={node})
        network.remove()
        gossip.kill()
        vxlan.kill()
        subprocess.run(["ip", "netns", "del", SWARM_NODE_NS], capture_output=True)
        subprocess.run(["ip", "link", "del", f"{SWARM_NODE_NS[:10]}-h"], capture_output=True)
