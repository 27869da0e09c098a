"""More hosts: the swarm's nodes, how a new one joins, and the registry they pull from.

Admins only (nodes belong to the server, like backing services): every entry point checks it,
whichever front end called. The swarm is initialised the first time it is asked for.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import docker

from paas.buildpacks import stack
from paas.buildpacks.service_images import ensure_image, image_for
from paas.core.names import SCHEDULER_SWARM as NAME
from paas.plugin_api import App, Context, PaasError, Settings, access
from paas.services.schedulers import stop_timeout

from .scheduler import node_guard, registry, registry_pki
from .scheduler import swarm_cluster as cluster
from .scheduler.swarm import Swarm, node_addresses
from .scheduler.swarm_cluster import NodeInfo
from .settings import swarm_settings

log = logging.getLogger("paas.nodes")


def advertise_address(ctx: Context) -> str:
    """PAAS_SWARM_ADVERTISE_ADDR, else docker0's address (what simulated nodes reach us by)."""
    return ctx.shared("swarm-advertise", lambda: cluster.advertise_address(ctx.settings, ctx.docker))


def ensure_swarm(ctx: Context) -> str:
    """This engine a swarm manager (made so on first ask); returns the advertise address."""
    address = advertise_address(ctx)
    cluster.ensure_swarm(ctx.docker, address)
    ports = swarm_settings(ctx.settings).app_ports

    def close_ports() -> bool:
        cluster.require_engine_settings(ctx.docker)  # what the join lines set on a node
        cluster.close_manager_ports(ports, ctx.settings.engine_locks_dir)
        return True

    ctx.shared("swarm-manager-firewall", close_ports)
    return address


def list_nodes(ctx: Context) -> list[NodeInfo]:
    access.require_admin(ctx, "nodes:list")
    ensure_swarm(ctx)
    return cluster.list_nodes(ctx.docker)


def join_command(ctx: Context, name: str | None = None, rotate: bool = False) -> list[str]:
    """The lines a root shell on the new Debian host `name` (its hostname; docker.io running)
    pastes to become a node: the swarm and the registry are started here first, so the lines work
    at once. They carry a registry certificate made for that host alone (pull only), which
    `nodes:remove <name>` revokes. `rotate` makes a new join token first: every line printed
    before stops working."""
    access.require_admin(ctx, "nodes:join-command")  # it holds the swarm's join token
    if not name and not rotate:
        raise PaasError("name the new host: nodes:join-command <its hostname> (lines are made for one host)")
    if name:
        registry_pki.node_name(name)
    address = ensure_swarm(ctx)
    if rotate:
        cluster.rotate_worker_token(ctx.docker)
        ctx.store.add_event(None, ctx.actor, "nodes:join-command", "rotated the join token")
    if not name:
        return []  # only the rotation was asked for
    a = registry.ensure_registry(ctx.settings, ctx.docker, address)
    guard = image_for(ctx.settings, ctx.docker, node_guard.RECIPE)  # built and pushed by _warm_registry
    cert_pem, key_pem = registry.node_certificate(ctx.settings, address, name)
    ctx.store.add_event(None, ctx.actor, "nodes:join-command", f"a registry certificate for {name}")
    _warm_registry(ctx, address)
    warning = []
    if not swarm_settings(ctx.settings).join_allow:  # the swarm's ports answer nodes only (guard_node_ports)
        warning = [
            "# paas: this server's swarm ports answer its nodes and PAAS_SWARM_JOIN_ALLOW only, and that"
            " is empty: add this host's address to it (and restart paas server) before running these lines"
        ]
    return warning + cluster.join_lines(
        ctx.docker,
        address,
        a.endpoint,
        a.ca_pem,
        cert_pem,
        key_pem,
        swarm_settings(ctx.settings).app_ports,
        prefetch=(
            registry.remote_ref(a.endpoint, stack.DEFAULT_STACK.image),
            registry.remote_ref(a.endpoint, guard),
        ),
        node=name,
        nodes=cluster.other_node_addresses(ctx.docker),
    )


_guard_refs: dict[str, str] = {}  # per data dir: the guard's image as this process pushed it


def _publish_guard(settings: Settings, client: docker.DockerClient, address: str) -> str:
    """The node guard's image in the registry (built first: about a minute, once), by digest;
    pushed once per process (a push waits for the registry's lock, which app pushes hold)."""
    local = ensure_image(settings, client, node_guard.RECIPE, lambda _line: None)
    key = f"{settings.data_dir}:{local}"
    if key not in _guard_refs:
        _guard_refs[key] = registry.publish(settings, client, address, local, always=True)
    return _guard_refs[key]


def _warm_registry(ctx: Context, address: str) -> None:
    """Push the stack while the operator pastes the lines: it is the big layer of every app image
    (about 50 s the first time), so the first deploy onto the swarm does not wait for it; then
    the node guard's image, which the lines pull too. Once per server process, on a thread (a
    host CLI that exits first only leaves it for later)."""
    state = ctx.shared("registry-warm", dict)
    if state.get("started"):
        return
    state["started"] = True
    settings, client = ctx.settings, ctx.docker

    def run() -> None:
        try:
            registry.publish_stack(settings, client, address)
            _publish_guard(settings, client, address)
        except (PaasError, docker.errors.DockerException) as exc:
            log.warning("pushing the stack to the registry: %s", exc)

    threading.Thread(target=run, name="paas-registry-warm", daemon=True).start()


def _node(ctx: Context, ref: str, operation: str) -> NodeInfo:
    access.require_admin(ctx, operation)
    ensure_swarm(ctx)
    return cluster.find_node(ctx.docker, ref)


def drain(ctx: Context, ref: str) -> NodeInfo:
    """No new processes on the node, and Swarm moves its running ones to the others."""
    node = _node(ctx, ref, "nodes:drain")
    cluster.drain(ctx.docker, node)
    ctx.store.add_event(None, ctx.actor, "nodes:drain", node.name)
    return node


def activate(ctx: Context, ref: str) -> NodeInfo:
    node = _node(ctx, ref, "nodes:activate")
    cluster.activate(ctx.docker, node)
    ctx.store.add_event(None, ctx.actor, "nodes:activate", node.name)
    return node


@dataclass(frozen=True)
class Removed:
    """What `nodes:remove` did: the node, and whether the registry certificate every node shared
    before per-node certificates was revoked with it (and which nodes may still hold only that)."""

    node: NodeInfo
    shared_revoked: bool = False
    still_shared: tuple[str, ...] = ()


def remove(ctx: Context, ref: str, force: bool = False) -> Removed:
    """Forget a node, then make sure the host cannot come back or read anything: a new join token
    (it may keep the lines it joined with) and its registry certificates revoked (it may keep
    those files too: without this it could still pull every app's image)."""
    node = _node(ctx, ref, "nodes:remove")
    cluster.remove(ctx.docker, node, force=force)
    cluster.rotate_worker_token(ctx.docker)
    address = advertise_address(ctx)
    shared = registry.revoke_node(ctx.settings, ctx.docker, address, node.name)
    still: tuple[str, ...] = ()
    if shared:
        still = tuple(
            n.name
            for n in cluster.list_nodes(ctx.docker)
            if not n.is_self and not registry_pki.has_own_certificate(ctx.settings, n.name)
        )
    detail = f"{node.name}; the join token was rotated; its registry certificates were revoked"
    if shared:
        detail += "; so was the certificate nodes shared before"
    ctx.store.add_event(None, ctx.actor, "nodes:remove", detail)
    return Removed(node, shared, still)


_guarded: dict[str, frozenset[str]] = {}  # per manager data dir: the node addresses last guarded
_guard_lock = threading.Lock()


_swarm_guarded: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {}  # per data dir: nodes, allow-list
# How often a pass checks that the guards are still in place (a reboot, a flush): two
# `iptables -C` processes every pass were a sixteenth of an idle manager's CPU (py-spy).
GUARD_CHECK_SECONDS = 30.0
_guard_checked: dict[str, float] = {}  # per data dir: when the guards were last checked


def guard_node_ports(ctx: Context) -> None:
    """Keep this host's containers off the other nodes' task ports (cluster.NODES_TABLE),
    and this host's swarm ports (2377, 7946, 4789) closed to every host but the nodes and those
    PAAS_SWARM_JOIN_ALLOW lists (cluster.SWARM_CHAIN): called by every reconcile pass; each is
    written only when the nodes changed, or when a check (every GUARD_CHECK_SECONDS) finds it
    gone (a reboot, a flushed ruleset)."""
    others = cluster.other_nodes_if_manager(ctx.docker)  # a manager: its node list; else docker info
    if others is None:
        return
    addresses = frozenset(others)
    key = str(ctx.settings.data_dir)
    wanted = (addresses, swarm_settings(ctx.settings).join_allow)
    with _guard_lock:
        due = time.monotonic() - _guard_checked.get(key, float("-inf")) >= GUARD_CHECK_SECONDS
        if due:
            _guard_checked[key] = time.monotonic()
        if _swarm_guarded.get(key) != wanted or (due and not cluster.swarm_ports_guarded()):
            cluster.guard_swarm_ports(set(addresses), swarm_settings(ctx.settings).join_allow)
            _swarm_guarded[key] = wanted
            log.info(
                "swarm ports open to %d node(s) and %d allowed host(s) only", len(addresses), len(wanted[1])
            )
    guard_workers(ctx, addresses)
    with _guard_lock:
        before = _guarded.get(key, frozenset())
        ports, pool = swarm_settings(ctx.settings).app_ports, ctx.settings.network_pool
        holds = not due or cluster.nodes_guard_holds(addresses, ports, pool)  # a reboot, a flush
        if key in _guarded and before == addresses and holds:
            return
        cluster.guard_node_ports(
            set(addresses), ports, pool, before - addresses, ctx.settings.engine_locks_dir
        )
        _guarded[key] = addresses
    log.info("task ports of %d other node(s) closed to this host's containers", len(addresses))


GUARD_RETRY_SECONDS = 60.0  # after a failure to hand the workers' guard its nodes
_workers: dict[str, dict] = {}  # per data dir: nodes last given, a thread at it, last failure


def guard_workers(ctx: Context, others: frozenset[str]) -> None:
    """The workers' node guard (scheduler/node_guard.py) told the swarm's nodes of now (`others`
    and this manager), where this server has nodes: its registry runs (it printed join lines or
    published an image for a worker). On a thread: the first time builds the guard's image
    (about a minute) and pushes it, which no pass waits for; after a failure, tried again
    GUARD_RETRY_SECONDS later. Nothing happens while the nodes stay the same."""
    key, settings, client = str(ctx.settings.data_dir), ctx.settings, ctx.docker
    nodes = others | {advertise_address(ctx)}
    with _guard_lock:
        state = _workers.setdefault(key, {"nodes": None, "running": False, "failed": float("-inf")})
        if not others or state["nodes"] == nodes or state["running"]:
            return
        if time.monotonic() - state["failed"] < GUARD_RETRY_SECONDS:
            return
        state["running"] = True
    constraints = swarm_settings(settings).constraints

    def run() -> None:
        done = False
        try:
            if registry.exists(settings, client):
                image = _publish_guard(settings, client, advertise_address(ctx))
                # and this manager as the nodes see it, should it differ from the advertise address
                every = set(nodes) | cluster.addresses_of_nodes(client)
                if node_guard.ensure(client, image, every, settings.instance_id, constraints):
                    log.info("the workers' swarm ports answer %d node(s) only", len(every))
            done = True
        except (PaasError, docker.errors.DockerException) as exc:
            log.warning("the workers' node guard: %s", exc)
        finally:
            with _guard_lock:
                state["running"] = False
                if done:
                    state["nodes"] = nodes
                else:
                    state["failed"] = time.monotonic()

    threading.Thread(target=run, name="paas-node-guard", daemon=True).start()


def publish(ctx: Context, local_tag: str) -> str:
    """The reference every node pulls `local_tag` by (the local tag itself while no other node
    exists): for the swarm scheduler, before it creates or updates a service."""
    return registry.publish(ctx.settings, ctx.docker, ensure_swarm(ctx), local_tag)


def collect_nodes(ctx: Context) -> list[str]:
    """After the manager's own image GC: the registry and every node drop the app images the
    manager no longer keeps. Nothing to do if no image was ever published. It may take a while
    (the first time it publishes the stack for its job): call it off the deploy path (the server's
    reconcile loop does, on a thread)."""
    if not cluster.swarm_active(ctx.docker):
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


def scheduler(ctx: Context, app: App | None = None) -> Swarm:
    """The `swarm` scheduler (`paas_schedulers`): for `app`, its services stop with its own
    `ps:set stop-timeout-seconds` (fixed when a service starts)."""
    grace = stop_timeout(ctx, app) if app is not None else ctx.settings.stop_timeout
    return Swarm(
        ctx.docker,
        ctx.settings.instance_id,
        publish=lambda image: publish(ctx, image),  # the private registry, once nodes joined
        stop_grace=grace,
        constraints=swarm_settings(ctx.settings).constraints,
        ready=lambda: ensure_swarm(ctx),
    )


def reconcile(ctx: Context, apps: list[App] | None = None) -> None:
    """Each reconcile pass (`paas_reconcile`): the nodes that fell (while some app runs on the
    swarm), this host's firewall toward the nodes, and now and then the node GC. `apps`: every
    app, when the pass read them already."""
    on_swarm = any(a.scheduler == NAME for a in (ctx.store.list_apps() if apps is None else apps))
    if on_swarm:
        try:
            watch_nodes(ctx)
        except docker.errors.DockerException as exc:
            log.warning("watching the nodes: %s", exc)
    try:
        guard_node_ports(ctx)
    except (PaasError, docker.errors.DockerException) as exc:
        log.warning("the host's firewall toward the nodes: %s", exc)
    if on_swarm:
        _collect_on_nodes(ctx)


NODE_GC_SECONDS = 600.0  # how often the registry and the nodes drop images the manager dropped
_node_gc = {"last": 0.0, "running": False}
_node_gc_lock = threading.Lock()


def _collect_on_nodes(ctx: Context) -> None:
    """Every NODE_GC_SECONDS, when some app runs on the swarm: the node GC (a global job, which
    may take minutes) on a thread of its own, so the reconcile loop never waits for it."""
    with _node_gc_lock:
        if _node_gc["running"] or time.monotonic() - _node_gc["last"] < NODE_GC_SECONDS:
            return
        _node_gc.update(running=True, last=time.monotonic())

    def run() -> None:
        try:
            removed = collect_nodes(ctx)
            if removed:
                log.info("node GC removed %d image(s) from the registry and the nodes", len(removed))
        except (PaasError, docker.errors.DockerException) as exc:
            log.warning("node GC: %s", exc)
        finally:
            with _node_gc_lock:
                _node_gc["running"] = False

    threading.Thread(target=run, name="paas-node-gc", daemon=True).start()
