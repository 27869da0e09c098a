"""The route of an app, computed in one function: hostnames, running web upstreams, plugin extras."""

from __future__ import annotations

from collections.abc import Iterable

from docker.models.containers import Container

from paas.core import names
from paas.core.context import Context
from paas.core.routes import Route, RouteExtras
from paas.router.nginx import Router
from paas.scheduler import docker_local as sched
from paas.services.lookup import hostnames


def router(ctx: Context) -> Router:
    """The managed nginx of this process (one per process, shared by every context copy)."""
    return ctx.shared("router", lambda: Router(ctx.settings))


def app_route(ctx: Context, app_name: str, web: Iterable[Container]) -> Route:
    """What the router should serve for the app, given the containers that should take traffic."""
    extras = RouteExtras()
    app = ctx.store.get_app(app_name)
    if app is not None:
        ctx.plugins.call_pre("paas_nginx_app", ctx=ctx, app=app, extras=extras)
    return Route(app_name, hostnames(ctx, app_name), sched.web_upstreams(web), extras)


def route_app(ctx: Context, app_name: str, web: Iterable[Container]) -> None:
    """Point the router at `web` (an empty list takes the app's route down, unless a plugin
    answers for it, as maintenance does)."""
    router(ctx).set_route(app_route(ctx, app_name, web))


def sync_app_route(ctx: Context, app_name: str) -> None:
    """Route the app's hostnames to its running web containers of the current release."""
    app = ctx.store.get_app(app_name)
    if app is None:
        return
    release = ctx.store.current_release(app.id)
    running = [
        c
        for c in sched.app_containers(ctx.docker, ctx.settings.instance_id, app.name, all_states=False)
        if release and not app.stopped and c.labels.get(names.LABEL_RELEASE) == str(release.version)
    ]
    route_app(ctx, app.name, running)


def sync_dashboard_route(ctx: Context, upstream: str | None = None, streams: str | None = None) -> None:
    """Route `paas.<domain>` to the dashboard at `upstream`, its live streams to `streams`
    (default: where they are routed now), over HTTPS when a plugin gives it a certificate.
    Nothing to do when it is not routed."""
    r = router(ctx)
    if upstream is None:
        upstream, streams = r.dashboard_upstream()
    if upstream is None:
        return
    extras = RouteExtras()
    ctx.plugins.call_pre("paas_nginx_dashboard", ctx=ctx, extras=extras)
    r.set_dashboard(
        ctx.settings.dashboard_host, upstream, tls=extras.tls, acme_root=extras.acme_root, streams=streams
    )
