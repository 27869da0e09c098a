"""Converge what runs on dockerd with what the store wants (at server start and every few seconds).

Heals: containers from a deploy that died half-way (kill -9), releases left pending, crashed or
missing processes, extra ones, and routes after dockerd restarts (host ports change). An app whose
deploy lock is held is skipped: the deploy owns it until it ends.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime

import docker

from paas.buildpacks import builder
from paas.core import names
from paas.core.container import ContainerSettings
from paas.core.context import Context
from paas.core.routes import Route
from paas.errors import Conflict, PaasError
from paas.scheduler import egress, health
from paas.scheduler import host_containers as sched
from paas.scheduler.interface import Desired, ProcessSpec
from paas.services import builders, locks, schedulers
from paas.services.containers import container_settings
from paas.services.locks import app_lock
from paas.services.lookup import hostnames
from paas.services.routing import app_route, route_app, router, tagged
from paas.store import App, Release

log = logging.getLogger("paas.reconcile")


class Routes:
    """The route changes of a pass, made at its end with one `nginx -t` and one reload (each
    reads every app's file: routing 200 apps one by one after a dockerd restart took minutes).
    An app's lock stays held until its route is in place, so a deploy that starts meanwhile
    routes after the pass, never before it."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pending: list[tuple[Route, dict[str, int], ExitStack]] = []

    def add(self, app_name: str, upstreams: dict[str, int], held: ExitStack) -> None:
        self.pending.append((app_route(self.ctx, app_name, upstreams), dict(upstreams), held.pop_all()))

    def apply(self) -> set[str]:
        """Route what the pass found; returns the apps whose route could not be put in place."""
        if not self.pending:
            return set()
        wanted = {route.app for route, _, _ in self.pending}
        r = router(self.ctx)
        done: list[tuple[str, dict[str, int]]] = []
        try:
            try:
                r.set_routes([route for route, _, _ in self.pending])
                done = [(route.app, upstreams) for route, upstreams, _ in self.pending]
            except PaasError as exc:  # one route nginx refuses must not keep the others out
                log.warning("routing %d app(s) at once: %s; one by one", len(self.pending), exc)
                for route, upstreams, _ in self.pending:
                    try:
                        r.set_route(route)
                        done.append((route.app, upstreams))
                    except PaasError as one:
                        log.warning("reconcile %s: %s", route.app, one)
        finally:
            for _, _, held in self.pending:
                held.close()
            self.pending.clear()
        for app_name, upstreams in done:
            _remember_route(self.ctx, app_name, upstreams)
        return wanted - {app_name for app_name, _ in done}


def reconcile_app(ctx: Context, app: App, routes: Routes | None = None) -> list[str] | None:
    """Fix one app; returns what was done (empty when all was well), None when it could not be
    looked at (a deploy holds its lock, or it is gone). With `routes` (a pass), its route change
    joins the pass's, which releases the app's lock once routed."""
    try:
        with ExitStack() as held:
            held.enter_context(app_lock(ctx, app.name, wait=False, mark=False))
            fresh = ctx.store.get_app_by_id(app.id)
            if fresh is None or fresh.name != app.name:  # destroyed or renamed since the listing
                return None
            return _reconcile(ctx, fresh, routes, held)
    except Conflict:
        return None


def _reconcile(
    ctx: Context, app: App, routes: Routes | None = None, held: ExitStack | None = None
) -> list[str]:
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
        leftovers = sched.containers_of(client, instance, app.name, role)
        if role == names.ROLE_RUN:  # `run` sessions hold no lock: only those whose session died
            leftovers = [c for c in leftovers if not _owner_alive(c)]
        if role == names.ROLE_BUILD and leftovers and builders.skip_cleanup(ctx, app):
            leftovers = [c for c in leftovers if c.status == "running"]  # stopped ones were kept
        if leftovers:
            sched.stop_and_remove(leftovers, timeout=1)
            actions.append(f"removed {len(leftovers)} leftover {role} container(s)")
    scheduler = schedulers.for_app(ctx, app)
    release = ctx.store.current_release(app.id)
    build = ctx.store.build_of(release)
    want = None
    if not (app.stopped or release is None or build is None or not build.image):
        formation = ctx.store.get_formation(app.id) or release.formation
        want = Desired(
            release.version,
            {t: n for t, n in formation.items() if t in build.processes},
            _specs(ctx, app, release, build.image),
        )
    done = scheduler.converge(app.name, want)
    for t in done.troubles:
        ctx.store.add_event(app.name, "paas", f"ps:{t.kind}", t.detail)
        ctx.plugins.call_post(
            "paas_process_trouble", ctx=ctx, app=app, dyno=t.dyno, kind=t.kind, detail=t.detail
        )
    actions += [t.action for t in done.troubles] + done.actions
    for probe in scheduler.probes(done.started):  # new web processes answer before they take traffic
        try:
            health.wait_until_serving(probe, ctx.settings.boot_timeout, hostnames(ctx, app.name)[0])
        except PaasError as exc:
            actions.append(f"{exc}")
    upstreams = tagged(scheduler, done.current) if want else {}
    if _route_changed(ctx, app.name, upstreams):
        if routes is None or held is None:
            route_app(ctx, app.name, upstreams)
            _remember_route(ctx, app.name, upstreams)
        else:
            routes.add(app.name, upstreams, held)
    return actions


ROUTE_REFRESH_SECONDS = 300.0  # how often a pass renders a route nothing changed
_routed_lock = threading.Lock()
# (data dir, app) -> (the upstreams last routed by a pass, when, its file as the pass left it):
# pruned to the apps of each pass
_routed: dict[tuple[str, str], tuple[dict[str, int], float, tuple | None]] = {}


def _route_changed(ctx: Context, app_name: str, upstreams: dict[str, int]) -> bool:
    """Whether a pass routes the app: when its upstreams changed since the last pass (a dockerd
    restart moves them), when its route file is not the one the pass left (someone changed or
    removed it by hand: one stat tells), and at least every ROUTE_REFRESH_SECONDS otherwise.
    Whatever changes the rest of a route (domains, properties, certificates, maintenance)
    routes the app itself, so rendering a route again (1-2 ms, two thirds of a visit; every
    minute for each app, before) only repeated what was in place."""
    with _routed_lock:
        last = _routed.get((str(ctx.settings.data_dir), app_name))
    if last is None or last[0] != upstreams or time.monotonic() - last[1] >= ROUTE_REFRESH_SECONDS:
        return True
    return router(ctx).file_state(app_name) != last[2]


def _remember_route(ctx: Context, app_name: str, upstreams: dict[str, int]) -> None:
    state = router(ctx).file_state(app_name)
    with _routed_lock:
        _routed[(str(ctx.settings.data_dir), app_name)] = (dict(upstreams), time.monotonic(), state)


def _forget_routes(ctx: Context, apps: list[App]) -> None:
    """Drop what the passes remember of apps that are gone (nothing grows with time)."""
    data_dir, listed = str(ctx.settings.data_dir), {a.name for a in apps}
    with _routed_lock:
        for key in [k for k in _routed if k[0] == data_dir and k[1] not in listed]:
            del _routed[key]
    with _well_lock:
        for key in [k for k in _well if k[0] == data_dir and k[1] not in listed]:
            del _well[key]


def _specs(ctx: Context, app: App, release: Release, image: str) -> Callable[[str, int], ProcessSpec]:
    """The spec of a missing process: the image's port and the container settings are read once,
    and only when something is missing (they cost a docker inspect and the config)."""
    made: list[tuple[ContainerSettings, int]] = []

    def spec(ptype: str, index: int) -> ProcessSpec:
        if not made:
            made.append((container_settings(ctx, app, release), builder.image_port(ctx.docker, image)))
        settings, port = made[0]
        return ProcessSpec(
            ctx.settings.instance_id, app.name, release.version, ptype, index, image, settings, port
        )

    return spec


# `run:detached` creates its container, then starts it: a pass that looked in between saw a
# container that had not started yet, and removed it as soon as it ran (the CI saw it).
DETACHED_START_SECONDS = 120.0


def _owner_alive(container) -> bool:  # type: ignore[no-untyped-def]
    token = container.labels.get(names.LABEL_OWNER, "")
    if token == names.DETACHED:  # run:detached: kept while it runs, or is about to
        if container.status == "running":
            return True
        created = _created_at(container)
        return container.status == "created" and time.time() - created < DETACHED_START_SECONDS
    pid = token.partition(":")[0]
    return pid.isdigit() and names.process_token(int(pid)) == token


def _created_at(container) -> float:  # type: ignore[no-untyped-def]
    """When docker made the container (0 when it does not say)."""
    try:
        return datetime.fromisoformat(container.attrs.get("Created") or "").timestamp()
    except ValueError:
        return 0.0


EGRESS_CHECK_SECONDS = 30.0  # how often a pass checks that the egress policy is still in place
_egress = {"last": 0.0}


def guard_egress(ctx: Context, rebuild: bool = False) -> None:
    """Where containers may connect (scheduler/egress.py): rebuilt from the settings when the
    server starts, checked every EGRESS_CHECK_SECONDS and put back by a pass that finds part of
    it gone (a flushed ruleset, a hand edit). The time is that of the last check, not the last
    pass: passes come every 5 s, so counting from the last pass the check never came."""
    if not rebuild and time.monotonic() - _egress["last"] < EGRESS_CHECK_SECONDS:
        return
    _egress["last"] = time.monotonic()  # a check that fails is not tried again every pass
    if rebuild:
        egress.apply(ctx.settings)
    elif egress.ensure(ctx.settings):
        log.warning("the egress policy was incomplete: put back")


def reconcile_all(ctx: Context) -> dict[str, list[str]]:
    """One pass over every app, then the plugins' own (`paas_reconcile`); errors of one app or
    plugin never stop the others. An app that was well at its last visit and that nothing
    happened to since is passed over (see `_unchanged`)."""
    started, begun = time.monotonic(), time.time()
    apps = ctx.store.list_apps()
    done: dict[str, list[str]] = {}
    routes = Routes(ctx)
    well: list[tuple[str, tuple]] = []  # apps found well, with what they looked like
    visited = 0
    with schedulers.surveyed(ctx, apps):  # what runs, listed once for all the apps
        marks = ctx.store.app_marks()
        try:
            for app in apps:
                mark = _mark(ctx, app, marks)
                if _unchanged(ctx, app, mark):
                    continue
                visited += 1
                try:
                    actions = reconcile_app(ctx, app, routes)
                except (PaasError, docker.errors.DockerException) as exc:
                    log.warning("reconcile %s: %s", app.name, exc)
                    continue
                if actions:
                    log.info("reconcile %s: %s", app.name, "; ".join(actions))
                    done[app.name] = actions
                elif actions is not None and mark is not None:
                    well.append((app.name, mark))
        finally:
            # An app whose route nginx refused is looked at again by the next pass; one routed
            # is well (a refresh of an unchanged route had cost every app a second visit a minute).
            unrouted = routes.apply()
    _remember_well(ctx, [(name, mark) for name, mark in well if name not in unrouted], begun)
    _forget_routes(ctx, apps)
    ctx.plugins.call_post("paas_reconcile", ctx=ctx, apps=apps)  # a scheduler plugin's nodes, too (swarm)
    try:
        guard_egress(ctx)
    except (PaasError, docker.errors.DockerException) as exc:
        log.warning("the host's firewall for containers: %s", exc)
    _record_pass(ctx, time.monotonic() - started, len(apps), visited)
    return done


_well_lock = threading.Lock()
# (data dir, app) -> (what the app looked like when a pass last found it well, when (monotonic),
# that pass's start (time.time())): pruned to the apps of each pass
_well: dict[tuple[str, str], tuple[tuple, float, float]] = {}


def _mark(ctx: Context, app: App, marks: dict[int, tuple]) -> tuple | None:
    """What a pass compares to tell that nothing happened to the app: its record (stopped,
    scheduler), its releases and formation, its processes as the pass's survey listed them (None:
    the scheduler cannot tell; the pass visits it)."""
    seen = schedulers.fingerprint(ctx, app)
    return None if seen is None else (app, marks.get(app.id), seen)


def _unchanged(ctx: Context, app: App, mark: tuple | None) -> bool:
    """Whether the pass may pass over the app: its last visit found it well, it looks the same
    (no container of it started, stopped, died or had any event; no release, status or scale
    changed), nobody released its lock since that pass began (a deploy, `ps:restart`: whatever
    holds the lock), and that visit is less than PAAS_RECONCILE_FULL_SECONDS old. Visiting every
    app every pass cost about 1.5 ms each (store reads, lock, converge): with 200 apps a pass
    took 0.31 s against 0.22 s passing over (bench/scale.py)."""
    full = ctx.settings.reconcile_full_seconds
    if mark is None or full <= 0:
        return False
    with _well_lock:
        last = _well.get((str(ctx.settings.data_dir), app.name))
    if last is None or last[0] != mark or time.monotonic() - last[1] >= full:
        return False
    return not locks.released_since(ctx, app.name, last[2])


def _remember_well(ctx: Context, found: list[tuple[str, tuple]], begun: float) -> None:
    data_dir, now = str(ctx.settings.data_dir), time.monotonic()
    with _well_lock:
        for name, mark in found:
            _well[(data_dir, name)] = (mark, now, begun)


def _record_pass(ctx: Context, seconds: float, apps: int, visited: int | None = None) -> None:
    """Write down the pass (when, how long, over how many apps) for `doctor`, and warn when a
    pass outlasts the interval: the loop then runs back to back and healing lags."""
    if seconds > ctx.settings.reconcile_seconds:
        log.warning(
            "a reconcile pass over %d app(s) took %.1f s, longer than PAAS_RECONCILE_SECONDS (%s)",
            apps,
            seconds,
            ctx.settings.reconcile_seconds,
        )
    path = names.reconcile_record(ctx.settings)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        record = {"at": time.time(), "seconds": round(seconds, 4), "apps": apps}
        if visited is not None:
            record["visited"] = visited
        tmp.write_text(json.dumps(record))
        tmp.replace(path)
    except OSError as exc:
        log.warning("cannot record the reconcile pass: %s", exc)


def last_pass(ctx: Context) -> dict | None:
    """The last pass the running server recorded, or None (no server ran a pass yet)."""
    try:
        found = json.loads(names.reconcile_record(ctx.settings).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None
