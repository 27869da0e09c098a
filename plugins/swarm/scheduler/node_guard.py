"""The node guard: on every worker, a task that keeps the host's swarm ports to the swarm's nodes.

A worker's gossip (7946) and VXLAN (4789/udp) ports answer any address, and a VXLAN frame names
its overlay by number and nothing else checks it: whoever reaches a worker could put frames into
our apps' overlays. The manager guards its own ports (swarm_cluster.guard_swarm_ports), but only
the manager knows who the nodes are, and that changes as hosts join and leave. So the manager
runs a global service on the workers, on the host's network with NET_ADMIN, and hands it the
chain as it must be now (swarm_cluster.swarm_ports_restore: the manager's own rules, for the
nodes' addresses). A change of nodes updates the service; each worker's new task writes the chain
in one iptables-restore transaction, checks it every CHECK_SECONDS (a flush, docker's restart)
and writes it again only when it differs.
The rules outlive the task: one that stops leaves them, the next replaces them. The join lines
write the same chain with the nodes known then (swarm_cluster.firewall_script), for a new host
and for each boot until its task runs.
"""

from __future__ import annotations

import docker
from docker.types import Resources, RestartPolicy, ServiceMode, UpdateConfig

from paas.buildpacks.service_images import ServiceImageRecipe
from paas.core import names
from paas.core.container import LOG_OPTIONS
from paas.plugin_api import PaasError

from .swarm_cluster import SWARM_CHAIN, swarm_ports_jumps, swarm_ports_restore

CHECK_SECONDS = 30
SCRIPT = "/usr/local/sbin/paas-node-guard"
# Which iptables: the one whose tables hold docker's DOCKER-USER (a host may use nft or legacy;
# rules written to the other would never see a packet). The chain is written only when it is not
# what it should be (`-S` spells a lone address with /32): each write would reset its counters,
# and on a legacy host rewrites the whole table beside dockerd's own changes.
GUARD_SCRIPT = f"""#!/bin/sh
# paas node guard (plugins/swarm/scheduler/node_guard.py): keeps {SWARM_CHAIN} as PAAS_SWARM_RULES
# (iptables-restore input) says and the INPUT rules in PAAS_SWARM_JUMPS (one a line), with the
# iptables this host's docker uses, checked every {CHECK_SECONDS} s. The rules stay when it stops.
set -u
trap 'exit 0' TERM INT
ipt=
for candidate in iptables-nft iptables-legacy; do
  if "$candidate" -w -S DOCKER-USER >/dev/null 2>&1; then ipt=$candidate; break; fi
done
if [ -z "$ipt" ]; then
  echo "paas-node-guard: docker's DOCKER-USER chain is in neither iptables-nft nor iptables-legacy" >&2
  exit 1
fi
want=$(printf '%s' "$PAAS_SWARM_RULES" | grep '^-A ')
while :; do
  have=$("$ipt" -w -S {SWARM_CHAIN} 2>/dev/null | grep '^-A ' | sed 's#/32 # #g')
  if [ "$have" != "$want" ]; then
    printf '%s' "$PAAS_SWARM_RULES" | "$ipt-restore" -w --noflush \\
      || echo "paas-node-guard: cannot write the chain" >&2
  fi
  printf '%s\\n' "$PAAS_SWARM_JUMPS" | while read -r jump; do
    [ -n "$jump" ] || continue
    $ipt -w -C $jump 2>/dev/null || $ipt -w -I $jump || echo "paas-node-guard: cannot add $jump" >&2
  done
  sleep {CHECK_SECONDS} &
  wait $!
done
"""

RECIPE = ServiceImageRecipe(
    kind="node-guard",
    packages=("iptables",),
    files=((SCRIPT, 0o755, GUARD_SCRIPT),),
    entrypoint=(SCRIPT,),
)


def env(nodes: set[str]) -> list[str]:
    """What the task is told: the chain for `nodes` (every node's address) and its jumps."""
    return [
        f"PAAS_SWARM_RULES={swarm_ports_restore(nodes)}",
        "PAAS_SWARM_JUMPS=" + "\n".join(swarm_ports_jumps()),
    ]


def spec(image: str, nodes: set[str], instance: str, constraints: tuple[str, ...]) -> dict:
    """The global service's arguments (docker SDK's services.create): on the workers where our
    apps may run (PAAS_SWARM_CONSTRAINTS: where our overlays are), every task replaced at once."""
    return {
        "image": image,
        "name": names.node_guard_service(instance),
        "env": env(nodes),
        "mode": ServiceMode("global"),
        "networks": ["host"],
        "cap_add": ["NET_ADMIN", "NET_RAW"],
        "constraints": ["node.role==worker", *constraints],
        "labels": {names.LABEL_INSTANCE: instance, names.LABEL_ROLE: names.ROLE_NODE_GUARD},
        "restart_policy": RestartPolicy(condition="any", delay=5_000_000_000),
        "update_config": UpdateConfig(parallelism=0),
        "resources": Resources(mem_limit=64 * 1024 * 1024),
        "log_driver": "json-file",
        "log_driver_options": dict(LOG_OPTIONS),
    }


def current(client: docker.DockerClient, instance: str) -> docker.models.services.Service | None:
    try:
        return client.services.get(names.node_guard_service(instance))
    except docker.errors.NotFound:
        return None


def ensure(
    client: docker.DockerClient, image: str, nodes: set[str], instance: str, constraints: tuple[str, ...]
) -> bool:
    """The guard service as `spec` says (`image`: the registry's reference, by digest); whether
    it was created or changed."""
    kwargs = spec(image, nodes, instance, constraints)
    try:
        service = current(client, instance)
        if service is None:
            client.services.create(**kwargs)
            return True
        task = service.attrs["Spec"]["TaskTemplate"]
        same = (
            task["ContainerSpec"].get("Image") == image
            and task["ContainerSpec"].get("Env") == kwargs["env"]
            and task["ContainerSpec"].get("CapabilityAdd") == kwargs["cap_add"]
            and (task.get("Placement") or {}).get("Constraints") == kwargs["constraints"]
        )
        if not same:
            service.update(**kwargs)
        return not same
    except docker.errors.DockerException as exc:
        detail = getattr(exc, "explanation", None) or exc
        raise PaasError(f"cannot start the node guard on the workers: {detail}") from None
