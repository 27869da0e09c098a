"""The cluster side of Docker Swarm, end to end: this host (the manager) and two simulated hosts
(containers with their own dockerd, tests/e2e/swarm_hosts.py) joined with exactly the lines
`nodes:join-command` prints."""

from __future__ import annotations

import json

from tests.e2e.conftest import PaasServer
from tests.e2e.swarm_hosts import SwarmCluster, swarm_cluster, swarm_server  # noqa: F401


def listed(server: PaasServer) -> dict[str, dict]:
    out = server.ssh("nodes:list", "--format", "json")
    assert out.returncode == 0, out.output
    return {n["name"]: n for n in json.loads(out.stdout)}


def test_two_hosts_join_with_the_printed_lines(swarm_server: PaasServer, swarm_cluster: SwarmCluster) -> None:
    nodes = listed(swarm_server)
    ours = [n for n in nodes.values() if n["self"] or n["name"] in {s.name for s in swarm_cluster.nodes}]
    assert len(ours) == 3, nodes
    assert all(n["state"] == "ready" and n["availability"] == "active" for n in ours), ours
    assert [n["role"] for n in ours if n["self"]] == ["manager"]
    for sim in swarm_cluster.nodes:
        assert nodes[sim.name]["role"] == "worker"
        assert nodes[sim.name]["address"] == sim.address
    text = swarm_server.ssh("nodes:list")
    assert text.returncode == 0 and "STATE" in text.stdout
    for sim in swarm_cluster.nodes:
        assert sim.name in text.stdout
