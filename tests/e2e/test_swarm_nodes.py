"""The cluster side of Docker Swarm, end to end: this host (the manager) and two simulated hosts
(containers with their own dockerd, tests/e2e/swarm_hosts.py) joined with exactly the lines
`nodes:join-command` prints."""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import tarfile
import urllib.request
import uuid
from pathlib import Path

import docker

from paas.buildpacks import stack
from paas.core import names
from paas.plugins import plugins
from paas.settings import Settings
from tests.e2e.conftest import PaasServer, wait_for
from tests.e2e.swarm_hosts import NODE_LABEL, SimulatedNode, SwarmCluster

plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
from paas_plugins.swarm.scheduler import registry  # noqa: E402
from paas_plugins.swarm.scheduler import swarm_cluster as cluster_ops  # noqa: E402
from paas_plugins.swarm.settings import swarm_settings  # noqa: E402


def listed(server: PaasServer) -> dict[str, dict]:
    out = server.ssh("nodes:list", "--format", "json")
    assert out.returncode == 0, out.output
    return {n["name"]: n for n in json.loads(out.stdout)}


def join_lines(server: PaasServer, host: str) -> list[str]:
    """What `nodes:join-command <host>` prints: lines for that host alone (its own certificate)."""
    out = server.ssh("nodes:join-command", host)
    assert out.returncode == 0, out.output
    return out.stdout.splitlines()


def test_two_hosts_join_with_the_printed_lines(cluster_paas: PaasServer, swarm_cluster: SwarmCluster) -> None:
    nodes = listed(cluster_paas)
    ours = [n for n in nodes.values() if n["self"] or n["name"] in {s.name for s in swarm_cluster.nodes}]
    assert len(ours) == 3, nodes
    assert all(n["state"] == "ready" and n["availability"] == "active" for n in ours), ours
    assert [n["role"] for n in ours if n["self"]] == ["manager"]
    for sim in swarm_cluster.nodes:
        assert nodes[sim.name]["role"] == "worker"
        assert nodes[sim.name]["address"] == sim.address
    text = cluster_paas.ssh("nodes:list")
    assert text.returncode == 0 and "STATE" in text.stdout
    for sim in swarm_cluster.nodes:
        assert sim.name in text.stdout


def test_drain_and_activate(cluster_paas: PaasServer, swarm_cluster: SwarmCluster) -> None:
    node = swarm_cluster.nodes[0]
    try:
        drained = cluster_paas.ssh("nodes:drain", node.name)
        assert drained.returncode == 0, drained.output
        assert listed(cluster_paas)[node.name]["availability"] == "drain"
        active = cluster_paas.ssh("nodes:activate", node.name)
        assert active.returncode == 0, active.output
        assert listed(cluster_paas)[node.name]["availability"] == "active"
    finally:
        swarm_cluster.restore()


def test_join_command_rotate_makes_the_printed_lines_stale(cluster_paas: PaasServer) -> None:
    def token(lines: list[str]) -> str:
        found = (re.search(r"swarm join --token '?(SWMTKN[^ ']+)", ln) for ln in lines)
        return next(m.group(1) for m in found if m)

    before = token(join_lines(cluster_paas, "host-a"))
    assert token(join_lines(cluster_paas, "host-a")) == before  # printing again does not rotate
    rotated = cluster_paas.ssh("nodes:join-command", "host-a", "--rotate")
    assert rotated.returncode == 0, rotated.output
    assert token(rotated.stdout.splitlines()) != before
    assert token(join_lines(cluster_paas, "host-b")) == token(rotated.stdout.splitlines())
    alone = cluster_paas.ssh("nodes:join-command", "--rotate")  # a rotation alone: no lines
    assert alone.returncode == 0 and "rotated" in alone.stdout and "swarm join" not in alone.stdout
    assert token(join_lines(cluster_paas, "host-b")) != token(rotated.stdout.splitlines())


def test_bad_node_names_get_one_line(cluster_paas: PaasServer) -> None:
    for bad in ("no-such-node", "../../etc", "$(id)"):
        out = cluster_paas.ssh("nodes:drain", bad)
        assert out.returncode != 0
        assert len(out.stderr.strip().splitlines()) == 1, out.output
        assert "Traceback" not in out.output
    for args in ((), ("$(id)",), ("bad_name",)):
        out = cluster_paas.ssh("nodes:join-command", *args)  # lines are made for one host, by its name
        assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1, out.output
        assert "Traceback" not in out.output and "SWMTKN" not in out.output


def test_lines_made_for_one_host_do_nothing_on_another(
    cluster_paas: PaasServer, swarm_cluster: SwarmCluster
) -> None:
    """The certificate in the lines is revoked by the node's name: a host of another name must
    not carry it (nor join with it)."""
    node = swarm_cluster.nodes[0]
    before = node.exec("cat /etc/docker/certs.d/*/client.cert").stdout
    wrong = node.run_lines(join_lines(cluster_paas, "some-other-host"))
    assert wrong.returncode != 0 and "these lines are for the host some-other-host" in wrong.stderr, wrong
    assert node.exec("cat /etc/docker/certs.d/*/client.cert").stdout == before


def test_the_manager_cannot_be_removed(cluster_paas: PaasServer) -> None:
    me = next(n for n in listed(cluster_paas).values() if n["self"])
    out = cluster_paas.ssh("nodes:remove", me["name"])
    assert out.returncode != 0 and "manager" in out.stderr, out.output


def test_a_killed_node_shows_down_then_is_removed_and_joins_again(
    cluster_paas: PaasServer, swarm_cluster: SwarmCluster
) -> None:
    node = swarm_cluster.nodes[1]
    try:
        up = cluster_paas.ssh("nodes:remove", node.name)
        assert up.returncode != 0 and "still up" in up.stderr, up.output  # docker refuses a live one
        node.kill()
        assert wait_for(lambda: listed(cluster_paas)[node.name]["state"] == "down", timeout=60, interval=1)
        old_lines = join_lines(cluster_paas, node.name)
        gone = cluster_paas.ssh("nodes:remove", node.name)
        assert gone.returncode == 0, gone.output
        assert "join token was rotated" in gone.stdout
        assert node.name not in listed(cluster_paas)
        node.start()
        # The removed host kept the lines it joined with: they no longer let it in (before, swarm
        # took it back and handed it every task's spec, config vars included).
        node.docker("swarm", "leave", "--force")
        refused = node.run_lines(old_lines)
        assert refused.returncode != 0, refused.stdout
        assert swarm_cluster.state(node.name) is None
        # The other worker's swarm ports no longer answer the removed host (its node guard was
        # told the nodes of now)...
        other = next(n for n in swarm_cluster.nodes if n is not node)
        assert wait_for(lambda: shuts_out(other, node.address), timeout=90, interval=2), swarm_chain(other)
        swarm_cluster.rejoin(node, join_lines(cluster_paas, node.name))  # the new lines do
        assert listed(cluster_paas)[node.name]["state"] == "ready"
        # ... and answer it again once it is a node again.
        assert wait_for(lambda: lets_in(other, node.address), timeout=90, interval=2), swarm_chain(other)
    finally:
        swarm_cluster.restore()


def test_a_killed_node_comes_back_by_itself(cluster_paas: PaasServer, swarm_cluster: SwarmCluster) -> None:
    node = swarm_cluster.nodes[0]
    try:
        node.kill()
        assert wait_for(lambda: listed(cluster_paas)[node.name]["state"] == "down", timeout=60, interval=1)
        node.start()  # its dockerd kept the swarm's state on its volume: no join lines needed
        assert wait_for(lambda: listed(cluster_paas)[node.name]["state"] == "ready", timeout=60, interval=1)
        # A restart is a reboot: iptables rules are gone, and the boot runs the firewall script again.
        assert wait_for(lambda: "--ctdir ORIGINAL" in node.exec("iptables -S DOCKER-USER").stdout, timeout=30)
        assert wait_for(lambda: lets_in(node, swarm_cluster.manager_address), timeout=30), swarm_chain(node)
    finally:
        swarm_cluster.restore()


def test_only_admins_see_nodes(cluster_paas: PaasServer, tmp_path: Path) -> None:
    key = tmp_path / "bob"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    added = cluster_paas.host("ssh-keys:add", "bob", str(key) + ".pub")
    assert added.returncode == 0, added.output
    for args in (("nodes:list",), ("nodes:join-command", "x"), ("nodes:drain", "x")):
        out = cluster_paas.ssh(*args, key=key)
        assert out.returncode != 0 and "only an admin" in out.stderr, out.output
        assert "SWMTKN" not in out.output


def server_settings(server: PaasServer) -> Settings:
    return Settings(data_dir=server.data_dir, extra={"PAAS_REGISTRY_PORT": server.env["PAAS_REGISTRY_PORT"]})


def tiny_app_image(client: docker.DockerClient, settings: Settings) -> str:
    """An app-named image built here (FROM scratch: nothing pulled), like a build's result."""
    tag = f"{names.image_repository('probe')}:b1-{uuid.uuid4().hex[:6]}-{settings.instance_id}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in (("Dockerfile", "FROM scratch\nCOPY probe /probe\n"), ("probe", uuid.uuid4().hex)):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    buf.seek(0)
    client.images.build(
        fileobj=buf, custom_context=True, tag=tag, labels={names.LABEL_INSTANCE: settings.instance_id}
    )
    return tag


def test_a_published_image_pulls_on_a_worker_and_gc_removes_it_everywhere(
    cluster_paas: PaasServer, swarm_cluster: SwarmCluster
) -> None:
    client, address = swarm_cluster.client, swarm_cluster.manager_address
    settings = server_settings(cluster_paas)
    old, kept = tiny_app_image(client, settings), tiny_app_image(client, settings)
    pinned = [registry.publish(settings, client, address, tag) for tag in (old, kept)]
    refs = [p.split("@")[0] for p in pinned]  # the tags; publish pins each to its digest
    endpoint = registry.endpoint(settings, address)
    assert all(r.startswith(f"{endpoint}/paas/app-probe:") for r in refs), refs
    assert all(p.split("@")[1].startswith("sha256:") for p in pinned), pinned
    for node in swarm_cluster.nodes:  # trusted through the files the join lines wrote
        for ref in refs:
            pulled = node.docker("pull", ref)
            assert pulled.returncode == 0, pulled.stderr
    client.images.remove(old)  # the manager's own GC dropped this release's image
    removed = registry.gc(settings, client, address, wait=300)
    assert refs[0] in removed and refs[1] not in removed
    for node in swarm_cluster.nodes:
        assert node.docker("image", "inspect", refs[0]).returncode != 0, node.name
        assert node.docker("image", "inspect", refs[1]).returncode == 0, node.name
    with registry._session(settings) as s:
        tags = s.get(f"https://{endpoint}/v2/paas/app-probe/tags/list", timeout=10).json().get("tags") or []
    assert refs[1].rsplit(":", 1)[1] in tags and refs[0].rsplit(":", 1)[1] not in tags


def build_on(node: SimulatedNode, ref: str) -> None:
    """An image of the node's own making, tagged as the registry's `ref` (a would-be overwrite)."""
    built = node.exec(
        "mkdir -p /tmp/evil && cd /tmp/evil && printf 'FROM scratch\\nCOPY x /probe\\n' > Dockerfile"
        f" && echo evil-$(date +%s%N) > x && docker build -q -t {ref} ."
    )
    assert built.returncode == 0, built.stdout + built.stderr


def test_a_worker_may_pull_but_not_push(cluster_paas: PaasServer, swarm_cluster: SwarmCluster) -> None:
    """Attack: a compromised worker, with the certificate its join lines installed, pushes
    `paas/app-<victim>:<tag>` (before, every node shared one certificate that could push, and the
    victim's tasks ran its code at their next pull). The registry's proxy refuses every write but
    the manager's; the worker still pulls."""
    client, address = swarm_cluster.client, swarm_cluster.manager_address
    settings = server_settings(cluster_paas)
    tag = tiny_app_image(client, settings)
    pinned = registry.publish(settings, client, address, tag)  # the manager pushes: what a deploy does
    remote_tag = pinned.split("@")[0]
    evil = swarm_cluster.nodes[0]
    assert evil.docker("pull", pinned).returncode == 0  # pulls work with its certificate
    build_on(evil, remote_tag)
    pushed = evil.docker("push", remote_tag)
    assert pushed.returncode != 0, pushed.stdout  # before: the push went through
    assert "denied" in (pushed.stdout + pushed.stderr), pushed
    new_repo = f"{registry.endpoint(settings, address)}/paas/app-evil:b1"
    build_on(evil, new_repo)
    created = evil.docker("push", new_repo)  # nor a repository of its own
    assert created.returncode != 0 and "denied" in (created.stdout + created.stderr), created
    with registry._session(settings) as s:  # nothing landed (the manager's view)
        repos = s.get(f"https://{registry.endpoint(settings, address)}/v2/_catalog", timeout=10).json()
    assert "paas/app-evil" not in (repos.get("repositories") or [])
    original = client.images.get(tag).id
    victim = swarm_cluster.nodes[1]
    assert victim.docker("pull", remote_tag).returncode == 0
    got = victim.docker("image", "inspect", "--format", "{{.Id}}", remote_tag).stdout.strip()
    assert got == original  # the tag is still the manager's image


def test_service_specs_pin_the_digest_the_managers_push_stored(
    cluster_paas: PaasServer, swarm_cluster: SwarmCluster
) -> None:
    """Even the one client that may push (the manager) moving a tag does not change what a
    service already names: references are pinned to the digest of the push."""
    client, address = swarm_cluster.client, swarm_cluster.manager_address
    settings = server_settings(cluster_paas)
    tag = tiny_app_image(client, settings)
    pinned = registry.publish(settings, client, address, tag)
    remote_tag, digest = pinned.split("@")
    assert digest.startswith("sha256:")
    other = tiny_app_image(client, settings)  # another build pushed over the same registry tag
    client.images.get(other).tag(*remote_tag.rsplit(":", 1))
    repository, _, tag_name = remote_tag.rpartition(":")
    for _chunk in client.api.push(repository, tag=tag_name, stream=True, decode=True):
        pass
    node = swarm_cluster.nodes[1]
    assert node.docker("pull", pinned).returncode == 0
    got = node.docker("image", "inspect", "--format", "{{.Id}}", pinned).stdout.strip()
    assert got == client.images.get(tag).id  # the first image, whatever the tag says now
    assert node.docker("pull", remote_tag).returncode == 0
    moved = node.docker("image", "inspect", "--format", "{{.Id}}", remote_tag).stdout.strip()
    assert moved == client.images.get(other).id  # (the tag itself did move)


def test_a_removed_node_can_no_longer_pull(cluster_paas: PaasServer, swarm_cluster: SwarmCluster) -> None:
    """Attack: a node is removed (retired, or lost and suspected) but keeps its files. Before, its
    certificate (everyone's) went on pulling every app's image. nodes:remove revokes its own;
    the proxy refuses it at the handshake. New lines let the host back in with a new one."""
    client, address = swarm_cluster.client, swarm_cluster.manager_address
    settings = server_settings(cluster_paas)
    endpoint = registry.endpoint(settings, address)
    ref = registry.publish(settings, client, address, tiny_app_image(client, settings))
    node, other = swarm_cluster.nodes
    certs = f"/etc/docker/certs.d/{endpoint}"
    catalog = (
        f"cd {certs} && curl -s --max-time 5 -w ' %{{http_code}}' --cacert ca.crt --cert ./client.cert"
        f" --key ./client.key https://{endpoint}/v2/_catalog"
    )
    try:
        assert node.docker("pull", ref).returncode == 0
        assert node.docker("swarm", "leave").returncode == 0  # retired as the README says
        assert wait_for(lambda: listed(cluster_paas)[node.name]["state"] == "down", timeout=60, interval=1)
        gone = cluster_paas.ssh("nodes:remove", node.name)
        assert gone.returncode == 0, gone.output
        assert "registry certificates were revoked" in gone.stdout, gone.stdout
        fresh = registry.publish(settings, client, address, tiny_app_image(client, settings))
        refused = node.docker("pull", fresh)
        assert refused.returncode != 0, refused.stdout  # before: the pull went through
        asked = node.exec(catalog)
        assert "repositories" not in asked.stdout, asked
        assert asked.stdout.endswith(" 400") or asked.returncode != 0, asked  # "certificate revoked"
        assert other.docker("pull", fresh).returncode == 0  # the other node's certificate is its own
        swarm_cluster.rejoin(node, join_lines(cluster_paas, node.name))  # new lines, a new certificate
        assert node.docker("pull", fresh).returncode == 0
        assert "repositories" in node.exec(catalog).stdout
    finally:
        swarm_cluster.restore()
        if swarm_cluster.state(node.name) is None:
            swarm_cluster.rejoin(node, join_lines(cluster_paas, node.name))


def stranger(client: docker.DockerClient, script: str) -> subprocess.CompletedProcess[str]:
    """A container on docker0 that is neither the manager nor a node: any other machine."""
    return subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--label",
            f"{NODE_LABEL}=stranger",
            stack.LATEST_ALIAS,
            "sh",
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_registry_refuses_clients_without_a_nodes_certificate(
    cluster_paas: PaasServer, swarm_cluster: SwarmCluster
) -> None:
    settings = server_settings(cluster_paas)
    endpoint = registry.ensure_registry(
        settings, swarm_cluster.client, swarm_cluster.manager_address
    ).endpoint
    refused = stranger(swarm_cluster.client, f"curl -sk --max-time 5 https://{endpoint}/v2/_catalog")
    assert "repositories" not in refused.stdout, refused
    # The proxy answers a client without a certificate 400 and nothing else (the handshake itself
    # passes: nginx checks the certificate after it).
    assert refused.returncode != 0 or "No required SSL certificate was sent" in refused.stdout, refused
    node = swarm_cluster.nodes[0]  # a node, with the files the join lines wrote, gets in
    certs = f"/etc/docker/certs.d/{endpoint}"
    allowed = node.exec(  # from the folder: curl reads a colon in --cert as a password separator
        f"cd {certs} && curl -s --max-time 5 --cacert ca.crt --cert ./client.cert --key ./client.key"
        f" https://{endpoint}/v2/_catalog"
    )
    assert allowed.returncode == 0 and "repositories" in allowed.stdout, allowed


def test_a_workers_app_ports_answer_the_manager_only(
    cluster_paas: PaasServer, swarm_cluster: SwarmCluster
) -> None:
    settings = server_settings(cluster_paas)
    client, address = swarm_cluster.client, swarm_cluster.manager_address
    image = registry.publish(settings, client, address, stack.DEFAULT_STACK.image)
    node = swarm_cluster.nodes[0]
    low = swarm_settings(settings).app_ports[0]
    name = f"probe-{uuid.uuid4().hex[:6]}"
    started = node.docker(
        "run", "-d", "--name", name, "-p", f"{low + 7}:8000", "-p", f"{low - 7}:8000", image,
        "python3", "-m", "http.server", "8000",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        # The join lines gave the node's engine no-new-privileges for every container.
        pid = node.docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
        nnp = node.exec(f"grep '^NoNewPrivs:' /proc/{pid}/status")
        assert nnp.stdout.split() == ["NoNewPrivs:", "1"], nnp
        url = f"http://{node.address}:{low + 7}/"
        assert wait_for(lambda: _get(url) == 200, timeout=30), "the manager cannot reach the app port"
        blocked = stranger(client, f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 {url}")
        assert blocked.returncode != 0 and blocked.stdout in ("", "000"), blocked
        # Nor a container on the node itself, asking its bridge's gateway (docker-proxy would
        # answer it past the rule, were it on).
        gateway = node.docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", "bridge")
        near = node.docker(
            "run", "--rm", image, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
            f"http://{gateway.stdout.strip()}:{low + 7}/",
        )  # fmt: skip
        assert gateway.stdout.strip() and near.returncode != 0 and near.stdout in ("", "000"), near
        # Only the app port range is closed: the rule is not a blanket firewall of the host.
        other = stranger(
            client, f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 http://{node.address}:{low - 7}/"
        )
        assert other.stdout == "200", other
    finally:
        node.docker("rm", "-f", name)


def _get(url: str) -> int | None:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=3) as r:
            return r.status
    except OSError:
        return None


def test_the_swarm_ports_answer_nodes_only(cluster_paas: PaasServer, swarm_cluster: SwarmCluster) -> None:
    """Attack: a machine that is not a node (nor listed in PAAS_SWARM_JOIN_ALLOW as about to join)
    opens the manager's swarm ports: 2377 (with a leaked token it joins and is handed every task's
    spec), 7946 (gossip). Before, they answered anyone. Now only the nodes and the allowed hosts
    (the suite allows docker0, where the simulated hosts live) get through."""
    client, address = swarm_cluster.client, swarm_cluster.manager_address
    probe = (
        "import socket, sys\n"
        "for port in (2377, 7946):\n"
        "    try:\n"
        f"        socket.create_connection(({address!r}, port), timeout=3).close(); print(port, 'open')\n"
        "    except OSError as e:\n"
        "        print(port, 'closed', e)\n"
    )
    assert wait_for(cluster_ops.swarm_ports_guarded, timeout=30), "the reconcile pass did not guard them"
    network = client.networks.create(
        f"paas-test-stranger-{uuid.uuid4().hex[:6]}", labels={NODE_LABEL: "stranger"}
    )
    try:
        elsewhere = client.containers.run(
            stack.LATEST_ALIAS, ["python3", "-c", probe], network=network.name, remove=False, detach=True,
            labels={NODE_LABEL: "stranger"},
        )  # fmt: skip
        try:
            elsewhere.wait(timeout=60)
            out = elsewhere.logs().decode()
        finally:
            elsewhere.remove(force=True)
    finally:
        network.remove()
    assert "2377 closed" in out and "7946 closed" in out, out  # before: both open
    node = swarm_cluster.nodes[0]  # a node still reaches them
    reached = node.exec(f"python3 -c {shlex.quote(probe)}")
    assert "2377 open" in reached.stdout and "7946 open" in reached.stdout, reached
    rules = subprocess.run(["iptables", "-S", cluster_ops.SWARM_CHAIN], capture_output=True, text=True).stdout
    assert f"-A {cluster_ops.SWARM_CHAIN} -s {node.address}/32 -j RETURN" in rules, rules
    assert rules.rstrip().endswith("-j DROP"), rules
    assert listed(cluster_paas)[node.name]["state"] == "ready"


def swarm_chain(node: SimulatedNode) -> str:
    """The node's chain of who may reach its swarm ports (`iptables -S`), with its counters."""
    return node.exec(f"iptables -S {cluster_ops.SWARM_CHAIN} -v").stdout


def lets_in(node: SimulatedNode, address: str) -> bool:
    """Whether `node`'s swarm ports answer `address` and drop everyone else."""
    rules = swarm_chain(node)
    return f"-s {address}/32 " in rules and "-j DROP" in (rules.rstrip().splitlines() or [""])[-1]


def shuts_out(node: SimulatedNode, address: str) -> bool:
    """Whether `node`'s swarm ports drop `address` (its chain is there and does not list it)."""
    rules = swarm_chain(node)
    return f"-s {address}/32 " not in rules and "-j DROP" in (rules.rstrip().splitlines() or [""])[-1]


def dropped(node: SimulatedNode) -> int:
    """Packets the node's chain dropped so far."""
    last = swarm_chain(node).rstrip().splitlines()[-1].split()
    return int(last[last.index("-c") + 1]) if "-c" in last and "DROP" in last else -1


def test_a_workers_swarm_ports_answer_nodes_only(
    cluster_paas: PaasServer, swarm_cluster: SwarmCluster
) -> None:
    """Attack: a machine that is not a node opens a worker's gossip port (7946) and sends VXLAN
    frames to its 4789/udp (a frame names its overlay by number and nothing else checks it: it
    lands in the overlay it names). Before, every worker answered anyone. Now the join lines
    close them to all but the nodes of then, and the node guard (a global service the manager
    keeps told of the nodes) to all but the nodes of now."""
    # The first node's join lines were printed before the other one joined: only its node guard
    # can have let the other in.
    worker, other = swarm_cluster.nodes[0], swarm_cluster.nodes[1]
    every = (swarm_cluster.manager_address, other.address)
    wait_for(lambda: all(lets_in(worker, a) for a in every), timeout=180, interval=2)
    before = dropped(worker)
    probe = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({worker.address!r}, 7946), timeout=3).close(); print('7946 open')\n"
        "except OSError as e:\n"
        "    print('7946 closed', e)\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "frame = bytes([8, 0, 0, 0, 0, 0x10, 0, 0]) + bytes(60)  # VXLAN header, VNI 4096, a frame\n"
        "for _ in range(20):\n"
        f"    s.sendto(frame, ({worker.address!r}, 4789))\n"
        "print('sent', flush=True)\n"
    )
    out = stranger(swarm_cluster.client, f"python3 -c {shlex.quote(probe)}")
    assert "7946 closed" in out.stdout and "sent" in out.stdout, out  # before: open
    assert dropped(worker) >= before + 20, (before, swarm_chain(worker))  # the frames went nowhere
    reached = other.exec(f"python3 -c {shlex.quote(probe)}")  # a node still gets through
    assert "7946 open" in reached.stdout, reached
    assert listed(cluster_paas)[worker.name]["state"] == "ready"
    # What let them in is the guard's chain: every node's address, the rest dropped, written by
    # a task of the node guard running on each worker.
    assert all(lets_in(worker, a) for a in every), swarm_chain(worker)
    guard = swarm_cluster.client.services.get(
        names.node_guard_service(server_settings(cluster_paas).instance_id)
    )
    nodes = {swarm_cluster.swarm_node(n.name)["ID"] for n in swarm_cluster.nodes}
    assert wait_for(
        lambda: {t["NodeID"] for t in guard.tasks() if t["Status"]["State"] == "running"} >= nodes,
        timeout=60,
        interval=2,
    ), guard.tasks()


def test_a_workers_tasks_cannot_reach_the_swarm_ports_of_any_node(
    cluster_paas: PaasServer, swarm_cluster: SwarmCluster
) -> None:
    """Attack: a task on a worker leaves its overlay through docker_gwbridge, masqueraded as
    that worker, a node: every node's swarm ports (2377, gossip on 7946, VXLAN on 4789/udp) took
    it for one. Before, the task opened the manager's 7946 and 2377 and the other worker's 7946.
    The join lines' firewall now drops our tasks' new connections to those ports, anywhere."""
    settings = server_settings(cluster_paas)
    client, address = swarm_cluster.client, swarm_cluster.manager_address
    image = registry.publish(settings, client, address, stack.DEFAULT_STACK.image)
    worker, other = swarm_cluster.nodes[0], swarm_cluster.nodes[1]
    targets = [(address, 2377), (address, 7946), (other.address, 7946)]
    probe = (
        "import socket, time\n"
        f"for host, port in {targets!r}:\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=5).close(); print(host, port, 'open')\n"
        "    except OSError as e:\n"
        "        print(host, port, 'closed', e)\n"
        "print('done', flush=True)\n"
        "time.sleep(3600)\n"
    )
    tag = uuid.uuid4().hex[:6]
    network = client.networks.create(f"paas-test-ovl-{tag}", driver="overlay", labels={NODE_LABEL: "probe"})
    service = client.services.create(
        image,
        ["python3", "-u", "-c", probe],
        name=f"paas-test-probe-{tag}",
        networks=[network.name],
        constraints=[f"node.hostname=={worker.name}"],
        restart_policy=docker.types.RestartPolicy(condition="none"),
        labels={NODE_LABEL: "probe"},
    )

    def output() -> str:
        ids = worker.docker("ps", "-aq", "--filter", f"label=com.docker.swarm.service.id={service.id}").stdout
        return "".join(worker.docker("logs", cid).stdout for cid in ids.split())

    try:
        assert wait_for(lambda: "done" in output(), timeout=180, interval=2), (output(), service.tasks())
        found = output()
        for host, port in targets:
            assert f"{host} {port} closed" in found, found
        # The rule is the tasks' own: the worker itself still speaks gossip to the manager.
        assert listed(cluster_paas)[worker.name]["state"] == "ready"
    finally:
        service.remove()
        wait_for(
            lambda: (
                not worker.docker(
                    "ps", "-aq", "--filter", f"label=com.docker.swarm.service.id={service.id}"
                ).stdout.strip()
            ),
            timeout=60,
        )
        try:
            network.remove()
        except docker.errors.APIError:
            pass  # still in use on the node for a moment: the cluster's teardown removes it
