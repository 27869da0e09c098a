"""More hosts: the swarm's nodes, how a new one joins, and the registry they pull from.

Admins only (nodes belong to the server, like backing services): every entry point checks it,
whichever front end called. The swarm is initialised the first time it is asked for.
"""

from __future__ import annotations

import logging
import threading

import docker

from paas.buildpacks import stack
from paas.core.context import Context
from paas.errors import PaasError
from paas.scheduler import registry, swarm_cluster
from paas.scheduler.swarm import node_addresses
from paas.scheduler.swarm_cluster import NodeInfo
from paas.services import access

log = logging.getLogger("paas.nodes")


def advertise_address(ctx: Context) -> str:
    """PAAS_SWARM_ADVERTISE_ADDR, else docker0's address (what simulated nodes reach us by)."""
    return ctx.shared("swarm-advertise", lambda: swarm_cluster.advertise_address(ctx.settings, ctx.docker))


def ensure_swarm(ctx: Context) -> str:
    """This engine a swarm manager (made so on first ask); returns the advertise address."""
    address = advertise_address(ctx)
    swarm_cluster.ensure_swarm(ctx.docker, address)
    ports = ctx.settings.swarm_app_ports

    def close_ports() -> bool:
        swarm_cluster.require_engine_settings(ctx.docker)  # what the join lines set on a node
        swarm_cluster.close_manager_ports(ports)
        return True

    ctx.shared("swarm-manager-firewall", close_ports)
    return address


def list_nodes(ctx: Context) -> list[NodeInfo]:
    access.require_admin(ctx, "nodes:list")
    ensure_swarm(ctx)
    return swarm_cluster.list_nodes(ctx.docker)


def join_command(ctx: Context, rotate: bool = False) -> list[str]:
    """The lines a root shell on a new Debian host (docker.io running) pastes to become a node:
    the swarm and the registry are started here first, so the lines work at once. `rotate`
    makes a new join token first: every line printed before stops working."""
    access.require_admin(ctx, "nodes:join-command")  # it holds the swarm's join token
    address = ensure_swarm(ctx)
    if rotate:
        swarm_cluster.rotate_worker_token(ctx.docker)
        ctx.store.add_event(None, ctx.actor, "nodes:join-command", "rotated the join token")
    a = registry.ensure_registry(ctx.settings, ctx.docker, address)
    _warm_registry(ctx, address)
    return swarm_cluster.join_lines(
        ctx.docker,
        address,
        a.endpoint,
        a.ca_pem,
        a.client_cert_pem,
        a.client_key_pem,
        ctx.settings.swarm_app_ports,
        prefetch=(registry.remote_ref(a.endpoint, stack.DEFAULT_STACK.image),),
    )


def _warm_registry(ctx: Context, address: str) -> None:
    """Push the stack while the operator pastes the lines: it is the big layer of every app image
    (about 50 s the first time), so the first deploy onto the swarm does not wait for it. Once
    per server process, on a thread (a host CLI that exits first only leaves it for later)."""
    state = ctx.shared("registry-warm", dict)
    if state.get("started"):
        return
    state["started"] = True
    settings, client = ctx.settings, ctx.docker

    def run() -> None:
        try:
            registry.publish_stack(settings, client, address)
        except (PaasError, docker.errors.DockerException) as exc:
            log.warning("pushing the stack to the registry: %s", exc)

    threading.Thread(target=run, name="paas-registry-warm", daemon=True).start()


def _node(ctx: Context, ref: str, operation: str) -> NodeInfo:
    access.require_admin(ctx, operation)
    ensure_swarm(ctx)
    return swarm_cluster.find_node(ctx.docker, ref)


def drain(ctx: Context, ref: str) -> NodeInfo:
    """No new processes on the node, and Swarm moves its running ones to the others."""
    node = _node(ctx, ref, "nodes:drain")
    swarm_cluster.drain(ctx.docker, node)
    ctx.store.add_event(None, ctx.actor, "nodes:drain", node.name)
    return node


def activate(ctx: Context, ref: str) -> NodeInfo:
    node = _node(ctx, ref, "nodes:activate")
    swarm_cluster.activate(ctx.docker, node)
    ctx.store.add_event(None, ctx.actor, "nodes:activate", node.name)
    return node


def remove(ctx: Context, ref: str, force: bool = False) -> NodeInfo:
    node = _node(ctx, ref, "nodes:remove")
    swarm_cluster.remove(ctx.docker, node, force=force)
    # The removed host may keep the lines it joined with: they must not let it back in.
    swarm_cluster.rotate_worker_token(ctx.docker)
    ctx.store.add_event(None, ctx.actor, "nodes:remove", f"{node.name}; the join token was rotated")
    return node


_guarded: dict[str, frozenset[str]] = {}  # per manager data dir: the node addresses last guarded
_guard_lock = threading.Lock()


def guard_node_ports(ctx: Context) -> None:
    """Keep this host's containers off the other nodes' task ports (swarm_cluster.NODES_CHAIN):
    called by every reconcile pass; iptables is touched only when the nodes changed."""
    state = swarm_cluster.local_state(ctx.docker)  # one `docker info` per pass
    if not swarm_cluster.swarm_active(ctx.docker, state):
        return
    addresses = frozenset(swarm_cluster.other_node_addresses(ctx.docker, state))
    key = str(ctx.settings.data_dir)
    with _guard_lock:
        before = _guarded.get(key, frozenset())
        if key in _guarded and before == addresses:
            return
        swarm_cluster.guard_node_ports(set(addresses), ctx.settings.swarm_app_ports, before - addresses)
        _guarded[key] = addresses
    log.info("task ports of %d other node(s) closed to this host's containers", len(addresses))


def publish(ctx: Context, local_tag: str) -> str:
    """The reference every node pulls `local_tag` by (the local tag itself while no other node
    exists): for the swarm scheduler, before it creates or updates a service."""
    return registry.publish(ctx.settings, ctx.docker, ensure_swarm(ctx), local_tag)


def collect_nodes(ctx: Context) -> list[str]:
    """After the manager's own image GC: the registry and every node drop the app images the
    manager no longer keeps. Nothing to do if no image was ever published. It may take a while
    (the first time it publishes the stack for its job): call it off the deploy path (the server's
    reconcile loop does, on a thread)."""
    if not swarm_cluster.swarm_active(ctx.docker):
        return []
    return registry.gc(ctx.settings, ctx.docker, advertise_address(ctx))


_ready: dict[str, bool] = {}  # node id -> whether it was ready at the last look


def watch_nodes(ctx: Context) -> list[str]:
    """The nodes that were ready and are not any more (an event and `paas_node_down` each, once per
    fall); the server's reconcile pass calls this while some app runs on the swarm."""
    try:
        found = node_addresses(ctx.docker)
    except docker.errors.APIError:  # not a swarm manager (any more)
        return []
    down = []
    for node_id, node in found.items():
        if _ready.get(node_id) and not node.ready:
            detail = f"{node.hostname} ({node.addr or 'no address'}) is down"
            ctx.store.add_event(None, "paas", "nodes:down", detail)
            ctx.plugins.call_post("paas_node_down", ctx=ctx, node=node.hostname, detail=detail)
            down.append(node.hostname)
        _ready[node_id] = node.ready
    return down
