"""The cluster side of Docker Swarm, end to end: this host (the manager) and two simulated hosts
(containers with their own dockerd, tests/e2e/swarm_hosts.py) joined with exactly the lines
`nodes:join-command` prints."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import urllib.request
import uuid
from pathlib import Path

import docker

from paas.buildpacks import stack
from paas.core import names
from paas.scheduler import registry
from paas.settings import Settings
from tests.e2e.conftest import PaasServer, wait_for
from tests.e2e.swarm_hosts import NODE_LABEL, SwarmCluster


def listed(server: PaasServer) -> dict[str, dict]:
    out = server.ssh("nodes:list", "--format", "json")
    assert out.returncode == 0, out.output
    return {n["name"]: n for n in json.loads(out.stdout)}


def join_lines(server: PaasServer) -> list[str]:
    out = server.ssh("nodes:join-command")
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
    token = lambda lines: next(ln for ln in lines if "swarm join --token" in ln)  # noqa: E731
    before = token(join_lines(cluster_paas))
    assert token(join_lines(cluster_paas)) == before  # printing again does not rotate
    rotated = cluster_paas.ssh("nodes:join-command", "--rotate")
    assert rotated.returncode == 0, rotated.output
    assert token(rotated.stdout.splitlines()) != before
    assert token(join_lines(cluster_paas)) == token(rotated.stdout.splitlines())


def test_bad_node_names_get_one_line(cluster_paas: PaasServer) -> None:
    for bad in ("no-such-node", "../../etc", "$(id)"):
        out = cluster_paas.ssh("nodes:drain", bad)
        assert out.returncode != 0
        assert len(out.stderr.strip().splitlines()) == 1, out.output
        assert "Traceback" not in out.output


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
        old_lines = join_lines(cluster_paas)
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
        swarm_cluster.rejoin(node, join_lines(cluster_paas))  # the new lines do
        assert listed(cluster_paas)[node.name]["state"] == "ready"
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
    finally:
        swarm_cluster.restore()


def test_only_admins_see_nodes(cluster_paas: PaasServer, tmp_path: Path) -> None:
    key = tmp_path / "bob"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    added = cluster_paas.host("ssh-keys:add", "bob", str(key) + ".pub")
    assert added.returncode == 0, added.output
    for args in (("nodes:list",), ("nodes:join-command",), ("nodes:drain", "x")):
        out = cluster_paas.ssh(*args, key=key)
        assert out.returncode != 0 and "only an admin" in out.stderr, out.output
        assert "SWMTKN" not in out.output


def server_settings(server: PaasServer) -> Settings:
    return Settings(data_dir=server.data_dir, registry_port=int(server.env["PAAS_REGISTRY_PORT"]))


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


def test_a_tag_a_worker_pushes_over_never_reaches_the_tasks(
    cluster_paas: PaasServer, swarm_cluster: SwarmCluster
) -> None:
    """Before: services named images by tag, and every node holds a certificate that may push.
    A compromised worker (or a removed one that kept its files) pushed `paas/app-<victim>:<tag>`
    and its code ran in the victim's tasks at their next pull. The scheduler now gets references
    pinned to the digest the manager's own push stored."""
    client, address = swarm_cluster.client, swarm_cluster.manager_address
    settings = server_settings(cluster_paas)
    tag = tiny_app_image(client, settings)
    pinned = registry.publish(settings, client, address, tag)  # what the swarm scheduler deploys
    remote_tag = pinned.split("@")[0]
    evil, victim_node = swarm_cluster.nodes
    pushed = evil.exec(
        "mkdir -p /tmp/evil && cd /tmp/evil && printf 'FROM scratch\\nCOPY x /probe\\n' > Dockerfile"
        f" && echo evil > x && docker build -q -t {remote_tag} . && docker push {remote_tag}"
    )
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr  # the hole item 1 still leaves
    original = client.images.get(tag).id
    assert victim_node.docker("pull", pinned).returncode == 0
    got = victim_node.docker("image", "inspect", "--format", "{{.Id}}", pinned).stdout.strip()
    assert got == original  # the manager's image, whatever the tag says now
    assert victim_node.docker("pull", remote_tag).returncode == 0
    overwritten = victim_node.docker("image", "inspect", "--format", "{{.Id}}", remote_tag).stdout.strip()
    assert overwritten != original  # (the tag itself did move: the attack was real)


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


def test_the_registry_refuses_clients_without_the_nodes_certificate(
    cluster_paas: PaasServer, swarm_cluster: SwarmCluster
) -> None:
    settings = server_settings(cluster_paas)
    endpoint = registry.ensure_registry(
        settings, swarm_cluster.client, swarm_cluster.manager_address
    ).endpoint
    refused = stranger(swarm_cluster.client, f"curl -sk --max-time 5 https://{endpoint}/v2/_catalog")
    assert refused.returncode != 0 and "repositories" not in refused.stdout, refused
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
    low = settings.swarm_app_ports[0]
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
