"""Deploy a release: the path every change to what runs goes through (push, config, scale,
rollback, restart). The push itself (build, then release) is in `push.py`.

A release is immutable (build + config snapshot + formation). Deploying one starts its
containers, waits until each serves, switches the router, and only then retires the old ones;
any failure stops the new containers and leaves the running release untouched.
"""

from __future__ import annotations

import time
from dataclasses import replace

import docker

from paas.buildpacks import builder
from paas.core import names, timing
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.scheduler.interface import ProcessSpec
from paas.services import checks, gc, release_phase, schedulers
from paas.services.containers import container_settings
from paas.services.routing import app_route, router, tagged
from paas.services.schedulers import stop_timeout
from paas.store import App, Release


class DeployFailed(PaasError):
    """The new release did not come up; the previous one keeps serving."""


def deploy_release(
    ctx: Context,
    app: App,
    release: Release,
    log: BuildLog,
    only_types: set[str] | None = None,
    predeploy: str | None = None,
    scheduler: str | None = None,
) -> None:
    """Start the release's processes, check them, switch the router, retire the old ones.

    With `only_types`, only those process types are replaced (`ps:restart <app> <type>`).
    `predeploy` (app.json's scripts.dokku.predeploy of a new build) runs before the release phase.
    `scheduler` (scheduler:set) starts the new processes on another scheduler than the app's:
    the old ones, on the app's, stop once the new ones serve.
    Any failure stops the new processes and leaves what ran before running and routed.
    """
    build = ctx.store.build_of(release)
    if build is None or not build.image:
        raise DeployFailed(f"release v{release.version} has no image to run")
    client = ctx.docker
    instance = ctx.settings.instance_id
    previous = schedulers.for_app(ctx, app)
    target_app = replace(app, scheduler=scheduler) if scheduler else app
    target = schedulers.for_app(ctx, target_app)
    current = previous.processes(app.name)
    moving = target.name != previous.name
    replaced = [h for h in current if moving or only_types is None or previous.type_of(h) in only_types]
    kept = [h for h in current if h not in replaced]
    started: list = []
    switched = False  # whether the router sends traffic to the new processes yet
    fresh = release.status == "pending" and only_types is None  # a new release, not a restart
    if fresh:
        ctx.plugins.call_post("paas_deploy_started", ctx=ctx, app=app, release=release, log=log)
    try:
        settings = container_settings(ctx, target_app, release)  # plugins may refuse: nothing started yet
        if fresh:  # a new release: its release phase first
            if predeploy:
                release_phase.run_predeploy(ctx, app, release, build.image, predeploy, log)
            release_phase.run_release_command(ctx, app, release, build.image, build.processes, log)
        downtime = checks.downtime_types(ctx, app)
        first = [h for h in replaced if not moving and checks.is_disabled(downtime, previous.type_of(h))]
        if first:  # checks:disable: these types give up zero downtime, old ones go first
            log.detail(f"zero downtime disabled: stopping {len(first)} old process(es) first")
            previous.stop(first, timeout=stop_timeout(ctx, app))
            replaced = [h for h in replaced if h not in first]
            current = [h for h in current if h not in first]
        port = builder.image_port(client, build.image)
        starting = time.time()
        specs = []
        for ptype, quantity in sorted(release.formation.items()):
            if ptype not in build.processes or (only_types is not None and ptype not in only_types):
                continue
            for index in range(1, quantity + 1):
                spec = ProcessSpec(
                    instance, app.name, release.version, ptype, index, build.image, settings, port
                )
                log.detail(f"starting {spec.dyno}" + (f" on {target.name}" if moving else ""))
                specs.append(spec)
        started = target.start(specs)
        timing.mark(app.name, "deploy.start", starting)
        probes = target.probes(started)
        old_upstreams = tagged(previous, current)
        if target.name == names.SCHEDULER_LOCAL:
            # Their addresses are known once started: nginx -t of the routes runs while they boot.
            route = app_route(ctx, app.name, {**tagged(target, started), **tagged(previous, kept)})
            # Once the new processes answer, they serve beside the old ones for the rest of the
            # settle period (one that dies meanwhile fails over to the old ones:
            # proxy_next_upstream), so the new release takes traffic a settle period sooner; then
            # the old ones leave the route.
            both = app_route(ctx, app.name, {**tagged(target, started), **old_upstreams})
            early = both.upstreams != route.upstreams and bool(route.upstreams)

            def side_by_side() -> None:
                nonlocal switched
                with timing.phase(app.name, "deploy.route.both"):
                    router(ctx).set_route(both)
                switched = True
                try:
                    router(ctx).precheck_route(route)
                except PaasError:
                    pass  # set_route checks it again, and says why

            checks.run_checks(
                ctx,
                app,
                build,
                probes,
                log,
                meanwhile=lambda: router(ctx).precheck_route(both if early else route),
                before_settle=side_by_side if early else None,
            )
        else:  # a task's port is known once it is placed and running: after the checks
            checks.run_checks(ctx, app, build, probes, log)
            route = app_route(ctx, app.name, {**tagged(target, started), **tagged(previous, kept)})
        with timing.phase(app.name, "deploy.route"):
            router(ctx).set_route(route)
    except Exception as exc:
        if switched:  # the old processes alone again, before the new ones stop
            try:
                router(ctx).set_route(app_route(ctx, app.name, old_upstreams))
            except (PaasError, docker.errors.DockerException) as undo:
                log.detail(f"could not route the old processes alone again: {undo}")
        target.stop(started, timeout=2)
        # Only a new release can fail here: a restart of the current one leaves it current.
        if release.status == "pending":
            ctx.store.set_release_status(release.id, "failed")
        ctx.store.add_event(app.name, ctx.actor, "release:failed", f"v{release.version}: {exc}")
        if fresh:
            ctx.plugins.call_post(
                "paas_deploy_failed", ctx=ctx, app=app, release=release, error=str(exc)[:300], log=log
            )
        if not isinstance(exc, PaasError | docker.errors.DockerException):
            raise
        log.error(str(exc))
        for line in getattr(exc, "log_tail", []):
            log.detail(line)
        raise DeployFailed(f"deploy of v{release.version} failed: {exc}") from exc
    if release.status == "pending":
        ctx.store.set_release_status(release.id, "succeeded")
        ctx.store.add_event(app.name, ctx.actor, "release", f"v{release.version} {release.description}")
    if app.stopped:
        ctx.store.set_stopped(app.id, False)
    if replaced:
        log.detail(f"stopping {len(replaced)} old process(es)")
        with timing.phase(app.name, "deploy.stop"):
            previous.stop(replaced, timeout=stop_timeout(ctx, app), wait=False)
    try:
        gc.collect(ctx, app)
    except (PaasError, docker.errors.DockerException) as exc:  # garbage can wait for the next deploy
        log.detail(f"cleanup skipped: {exc}")
    if only_types is None:
        ctx.plugins.call_post("paas_post_deploy", ctx=ctx, app=app, release=release, log=log)


__all__ = ["DeployFailed", "deploy_release", "stop_timeout"]
