"""Converge what runs on dockerd with what the store wants (at server start and every few seconds).

Heals: containers from a deploy that died half-way (kill -9), releases left pending, crashed or
missing processes, extra ones, and routes after dockerd restarts (host ports change). An app whose
deploy lock is held is skipped: the deploy owns it until it ends.
"""

from __future__ import annotations

import logging
import threading
import time

import docker

from paas.buildpacks import builder
from paas.core import names
from paas.core.context import Context
from paas.errors import Conflict, PaasError
from paas.scheduler import docker_local as sched
from paas.scheduler import egress, health
from paas.scheduler.interface import ProcessSpec
from paas.scheduler.swarm import Swarm
from paas.services import nodes, schedulers
from paas.services.containers import container_settings
from paas.services.locks import app_lock
from paas.services.lookup import hostnames
from paas.services.routing import route_app, tagged
from paas.store import App

log = logging.getLogger("paas.reconcile")
GONE = ("exited", "dead", "created", "removing")


def reconcile_app(ctx: Context, app: App) -> list[str]:
    """Fix one app; returns what was done (empty when all was well)."""
    try:
        with app_lock(ctx, app.name, wait=False):
            fresh = ctx.store.get_app_by_id(app.id)
            if fresh is None or fresh.name != app.name:  # destroyed or renamed since the listing
                return []
            return _reconcile(ctx, fresh)
    except Conflict:
        return []


def _reconcile(ctx: Context, app: App) -> list[str]:
    actions: list[str] = []
    for r in ctx.store.list_releases(app.id):
        if r.status == "pending":  # nobody holds the lock, so its deploy died
            ctx.store.set_release_status(r.id, "failed")
            ctx.store.add_event(app.name, "paas", "release:failed", f"v{r.version}: interrupted")
            actions.append(f"marked v{r.version} failed (interrupted)")
    client = ctx.docker
    instance = ctx.settings.instance_id
    # Build and release-phase containers only exist during a deploy, which holds the lock we hold:
    # any left now belong to a deploy that died.
    for role in (names.ROLE_BUILD, names.ROLE_ONEOFF, names.ROLE_RUN):
        labels = names.label_filter(instance, app.name, role)
        leftovers = client.containers.list(all=True, filters={"label": labels})
        if role == names.ROLE_RUN:  # `run` sessions hold no lock: only those whose session died
            leftovers = [c for c in leftovers if not _owner_alive(c)]
        if leftovers:
            sched.stop_and_remove(leftovers, timeout=1)
            actions.append(f"removed {len(leftovers)} leftover {role} container(s)")
    scheduler = schedulers.for_app(ctx, app)
    if isinstance(scheduler, Swarm):
        return actions + _reconcile_swarm(ctx, app, scheduler)
    if not isinstance(scheduler, sched.DockerLocal):  # a plugin's: it converges itself; routes follow
        release = ctx.store.current_release(app.id)
        current = [
            h for h in scheduler.processes(app.name) if release and scheduler.release_of(h) == release.version
        ]
        route_app(ctx, app.name, {} if app.stopped else tagged(scheduler, current))
        return actions
    containers = sched.app_containers(client, instance, app.name)
    actions.extend(_record_oom_kills(ctx, app, containers))
    actions.extend(_record_crash_loops(ctx, app, containers))
    release = ctx.store.current_release(app.id)
    build = ctx.store.build_of(release)
    if app.stopped or release is None or build is None or not build.image:
        if containers:
            sched.stop_and_remove(containers, timeout=5)
            actions.append(f"removed {len(containers)} container(s) of a stopped or undeployed app")
        route_app(ctx, app.name, {})
        return actions
    formation = ctx.store.get_formation(app.id) or release.formation
    desired = {(t, i) for t, n in formation.items() if t in build.processes for i in range(1, n + 1)}
    keep: dict[tuple[str, int], object] = {}
    remove = []
    for c in containers:
        key = (c.labels.get(names.LABEL_TYPE, ""), int(c.labels.get(names.LABEL_INDEX, "0")))
        if c.labels.get(names.LABEL_RELEASE) != str(release.version) or key not in desired or key in keep:
            remove.append(c)
        elif c.status in GONE:
            remove.append(c)
        else:
            keep[key] = c
    if remove:
        sched.stop_and_remove(remove, timeout=5)
        actions.append(f"removed {len(remove)} stray container(s)")
    started = []
    missing = sorted(desired - set(keep))
    port = builder.image_port(client, build.image) if missing else names.APP_PORT
    settings = container_settings(ctx, app, release) if missing else None
    for ptype, index in missing:
        assert settings is not None
        spec = ProcessSpec(instance, app.name, release.version, ptype, index, build.image, settings, port)
        container = sched.start_process(client, spec, ctx.settings.local_ports)
        started.append(container)
        actions.append(f"started {spec.dyno}")
    for c in started:
        if c.labels.get(names.LABEL_TYPE) == "web":
            try:
                probe = sched.ContainerProbe(c)
                health.wait_until_serving(probe, ctx.settings.boot_timeout, hostnames(ctx, app.name)[0])
            except PaasError as exc:
                actions.append(f"{exc}")
    # web_upstreams keeps only the containers that are running now
    route_app(ctx, app.name, tagged(scheduler, [*keep.values(), *started]))
    return actions


def _reconcile_swarm(ctx: Context, app: App, swarm: Swarm) -> list[str]:
    """Swarm keeps each service's replicas itself (a lost node's tasks start elsewhere; a node
    that comes back has its old tasks shut down). Here: one service per process type of the
    current release at the formation's scale, the rest removed, and the route following the
    running tasks wherever they are now."""
    actions: list[str] = []
    services = swarm.processes(app.name)
    release = ctx.store.current_release(app.id)
    build = ctx.store.build_of(release)
    if app.stopped or release is None or build is None or not build.image:
        if services:
            swarm.stop(services, timeout=5, wait=False)
            actions.append(f"removed {len(services)} service(s) of a stopped or undeployed app")
        route_app(ctx, app.name, {})
        return actions
    formation = ctx.store.get_formation(app.id) or release.formation
    desired = {t: n for t, n in formation.items() if t in build.processes and n > 0}
    keep: dict[str, object] = {}
    remove = []
    for svc in sorted(services, key=lambda s: s.attrs.get("CreatedAt", ""), reverse=True):
        ptype = swarm.type_of(svc)
        if swarm.release_of(svc) != release.version or ptype not in desired or ptype in keep:
            remove.append(svc)
        else:
            keep[ptype] = svc
    if remove:
        swarm.stop(remove, timeout=5, wait=False)
        actions.append(f"removed {len(remove)} stray service(s)")
    for ptype, svc in keep.items():
        if swarm.replicas(svc) != desired[ptype]:
            swarm.scale(svc, desired[ptype])
            actions.append(f"scaled {ptype} to {desired[ptype]}")
    missing = sorted(set(desired) - set(keep))
    if missing:
        port = builder.image_port(ctx.docker, build.image)
        settings = container_settings(ctx, app, release)
        specs = [
            ProcessSpec(
                ctx.settings.instance_id, app.name, release.version, t, i, build.image, settings, port
            )
            for t in missing
            for i in range(1, desired[t] + 1)
        ]
        swarm.start(specs)
        actions.append("started " + ", ".join(missing))
    route_app(ctx, app.name, tagged(swarm, swarm.processes(app.name)))
    return actions


def _owner_alive(container) -> bool:  # type: ignore[no-untyped-def]
    token = container.labels.get(names.LABEL_OWNER, "")
    if token == names.DETACHED:  # run:detached: kept while it runs
        return container.status == "running"
    pid = token.partition(":")[0]
    return pid.isdigit() and names.process_token(int(pid)) == token


_oom_seen: dict[str, str] = {}  # container id -> the FinishedAt of the OOM kill already recorded


def _record_oom_kills(ctx: Context, app: App, containers: list) -> list[str]:
    """An event for each OOM kill, once (docker's restart policy restarts it, with backoff)."""
    out = []
    for c in containers:
        state = c.attrs.get("State", {})
        finished = state.get("FinishedAt", "")
        if state.get("OOMKilled") and _oom_seen.get(c.id) != finished:
            _oom_seen[c.id] = finished
            dyno = f"{c.labels.get(names.LABEL_TYPE)}.{c.labels.get(names.LABEL_INDEX)}"
            ctx.store.add_event(app.name, "paas", "ps:oom-killed", f"{dyno} passed its memory limit")
            ctx.plugins.call_post(
                "paas_process_trouble",
                ctx=ctx,
                app=app,
                dyno=dyno,
                kind="oom-killed",
                detail=f"{dyno} passed its memory limit",
            )
            out.append(f"{dyno} was OOM-killed")
    return out


CRASH_LOOP_RESTARTS = 3  # restarts within CRASH_LOOP_SECONDS that make a crash loop
CRASH_LOOP_SECONDS = 300.0
_restarts: dict[str, dict[str, list[tuple[float, int]]]] = {}  # app -> container -> (when, restart count)
_looping: set[str] = set()  # containers whose crash loop was recorded (news again once they settle)


def _record_crash_loops(ctx: Context, app: App, containers: list, now: float | None = None) -> list[str]:
    """An event for a process restarted CRASH_LOOP_RESTARTS times within CRASH_LOOP_SECONDS (once
    per loop): docker's restart policy keeps restarting it with a growing delay, nobody is told."""
    now = time.monotonic() if now is None else now
    out = []
    before = _restarts.get(app.name, {})
    after: dict[str, list[tuple[float, int]]] = {}
    for c in containers:
        count = int(c.attrs.get("RestartCount", 0) or 0)
        seen = [(t, n) for t, n in before.get(c.id, []) if now - t <= CRASH_LOOP_SECONDS]
        if not seen or seen[-1][1] != count:
            seen.append((now, count))
        after[c.id] = seen
        grew = count - seen[0][1]
        if len(seen) == 1:
            _looping.discard(c.id)  # no restart for a whole window: a new loop is news again
        if grew >= CRASH_LOOP_RESTARTS and c.id not in _looping:
            _looping.add(c.id)
            dyno = f"{c.labels.get(names.LABEL_TYPE)}.{c.labels.get(names.LABEL_INDEX)}"
            detail = f"{dyno} restarted {grew} times in {int(CRASH_LOOP_SECONDS // 60)} minutes"
            ctx.store.add_event(app.name, "paas", "ps:crash-loop", detail)
            ctx.plugins.call_post(
                "paas_process_trouble", ctx=ctx, app=app, dyno=dyno, kind="crash-loop", detail=detail
            )
            out.append(f"{dyno} is crash-looping")
    _looping.difference_update(set(before) - set(after))  # containers gone
    _restarts[app.name] = after
    return out


EGRESS_CHECK_SECONDS = 30.0  # how often a pass checks that the egress policy is still in place
_egress = {"last": 0.0}


def guard_egress(ctx: Context, rebuild: bool = False) -> None:
    """Where containers may connect (scheduler/egress.py): rebuilt from the settings when the
    server starts, put back by a pass that finds part of it gone (a reboot, an iptables flush)."""
    if rebuild:
        egress.apply(ctx.settings)
    elif time.monotonic() - _egress["last"] >= EGRESS_CHECK_SECONDS and egress.ensure(ctx.settings):
        log.warning("the egress policy was incomplete: put back")
    _egress["last"] = time.monotonic()


def reconcile_all(ctx: Context) -> dict[str, list[str]]:
    """One pass over every app, then the plugins' own (`paas_reconcile`); errors of one app or
    plugin never stop the others."""
    done: dict[str, list[str]] = {}
    for app in ctx.store.list_apps():
        try:
            actions = reconcile_app(ctx, app)
        except (PaasError, docker.errors.DockerException) as exc:
            log.warning("reconcile %s: %s", app.name, exc)
            continue
        if actions:
            log.info("reconcile %s: %s", app.name, "; ".join(actions))
            done[app.name] = actions
    ctx.plugins.call_post("paas_reconcile", ctx=ctx)
    if any(a.scheduler == names.SCHEDULER_SWARM for a in ctx.store.list_apps()):
        try:
            nodes.watch_nodes(ctx)
        except docker.errors.DockerException as exc:
            log.warning("watching the nodes: %s", exc)
    try:
        guard_egress(ctx)
        nodes.guard_node_ports(ctx)
    except (PaasError, docker.errors.DockerException) as exc:
        log.warning("the host's firewall for containers: %s", exc)
    _collect_on_nodes(ctx)
    return done


NODE_GC_SECONDS = 600.0  # how often the registry and the nodes drop images the manager dropped
_node_gc = {"last": 0.0, "running": False}
_node_gc_lock = threading.Lock()


def _collect_on_nodes(ctx: Context) -> None:
    """Every NODE_GC_SECONDS, when some app runs on the swarm: the node GC (a global job, which
    may take minutes) on a thread of its own, so the reconcile loop never waits for it."""
    with _node_gc_lock:
        if _node_gc["running"] or time.monotonic() - _node_gc["last"] < NODE_GC_SECONDS:
            return
        if not any(a.scheduler == names.SCHEDULER_SWARM for a in ctx.store.list_apps()):
            return
        _node_gc.update(running=True, last=time.monotonic())

    def run() -> None:
        try:
            removed = nodes.collect_nodes(ctx)
            if removed:
                log.info("node GC removed %d image(s) from the registry and the nodes", len(removed))
        except (PaasError, docker.errors.DockerException) as exc:
            log.warning("node GC: %s", exc)
        finally:
            with _node_gc_lock:
                _node_gc["running"] = False

    threading.Thread(target=run, name="paas-node-gc", daemon=True).start()
