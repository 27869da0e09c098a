"""The route of an app, computed in one function: hostnames, running web upstreams, plugin extras."""

from __future__ import annotations

from collections.abc import Iterable

from paas.core.context import Context
from paas.core.routes import Route, RouteExtras
from paas.router.nginx import Router
from paas.services import access, schedulers
from paas.services.lookup import hostnames


def router(ctx: Context) -> Router:
    """The managed nginx of this process (one per process, shared by every context copy)."""
    return ctx.shared("router", lambda: Router(ctx.settings))


def stop_router(ctx: Context) -> bool:
    """`router:stop`: stop the managed nginx a stopped server left serving (whether one ran)."""
    access.require_admin(ctx, "router:stop")
    r = router(ctx)
    if r.running_pid() is None:
        return False
    r.stop()
    return True


def app_route(ctx: Context, app_name: str, upstreams: Iterable[str]) -> Route:
    """What the router should serve for the app, given the `host:port`s that should take traffic
    (the scheduler's `upstreams` of its web processes)."""
    extras = RouteExtras()
    app = ctx.store.get_app(app_name)
    if app is not None:
        ctx.plugins.call_pre("paas_nginx_app", ctx=ctx, app=app, extras=extras)
    return Route(app_name, hostnames(ctx, app_name), sorted(upstreams), extras)


def route_app(ctx: Context, app_name: str, upstreams: Iterable[str]) -> None:
    """Point the router at `upstreams` (none takes the app's route down, unless a plugin
    answers for it, as maintenance does)."""
    router(ctx).set_route(app_route(ctx, app_name, upstreams))


def sync_app_route(ctx: Context, app_name: str) -> None:
    """Route the app's hostnames to its running web containers of the current release."""
    app = ctx.store.get_app(app_name)
    if app is None:
        return
    release = ctx.store.current_release(app.id)
    scheduler = schedulers.for_app(ctx, app)
    current = [
        h
        for h in scheduler.processes(app.name)
        if release and not app.stopped and scheduler.release_of(h) == release.version
    ]
    route_app(ctx, app.name, scheduler.upstreams(current))


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
