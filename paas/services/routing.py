"""The route of an app, computed in one function: hostnames, running web upstreams, plugin extras,
and the app's `nginx` properties (Dokku's `nginx:set`).

`nginx:set [--global] [<app>] <key> [<value>]` sets timeouts, buffers, the body size and
underscores in headers; each becomes a server-level directive of the app, its value checked
against the directive's own syntax first (no variables, quotes or semicolons reach nginx), and a
change rebuilds the app's route (every app's, for a global one) through `nginx -t`. Dokku's
properties that name the host's files, addresses or binaries (log paths, bind addresses, the
nginx command, a template) are not offered: an app's owner does not choose those here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from paas.core.context import Context
from paas.core.output import BuildLog
from paas.core.routes import Route, RouteExtras
from paas.errors import PaasError
from paas.router.nginx import HTTP_DEFAULTS, NGINX_DEFAULTS, Router
from paas.scheduler.interface import Handle, Scheduler
from paas.services import access, properties, schedulers
from paas.services.lookup import hostnames
from paas.store import App


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


def tagged(scheduler: Scheduler, handles: Sequence[Handle]) -> dict[str, int]:
    """The `host:port` of every running web process among `handles`, each with the release it
    runs (the router tags each request's metrics with it)."""
    by_release: dict[int, list[Handle]] = {}
    for handle in handles:
        by_release.setdefault(scheduler.release_of(handle), []).append(handle)
    return {u: release for release, group in by_release.items() for u in scheduler.upstreams(group)}


def app_route(ctx: Context, app_name: str, upstreams: Mapping[str, int]) -> Route:
    """What the router should serve for the app, given the `host:port`s that should take traffic
    and the release each runs (`tagged`)."""
    extras = RouteExtras()
    app = ctx.store.get_app(app_name)
    if app is not None:
        for text in nginx_directives(ctx, app):
            extras.add_directive(text)
        ctx.plugins.call_pre("paas_nginx_app", ctx=ctx, app=app, extras=extras)
    return Route(app_name, hostnames(ctx, app_name), sorted(upstreams), extras, dict(upstreams))


def route_app(ctx: Context, app_name: str, upstreams: Mapping[str, int]) -> None:
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
    route_app(ctx, app.name, tagged(scheduler, current))


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


_TIME = re.compile(r"^[0-9]{1,6}(?:ms|s|m|h|d)?$")
_SIZE = re.compile(r"^[0-9]{1,9}[kKmMgG]?$")
_BUFFERS = re.compile(r"^[0-9]{1,4} [0-9]{1,9}[kKmM]?$")


def _matching(pattern: re.Pattern[str], what: str) -> properties.Check:
    def check(ctx: Context, value: str) -> str:
        if not pattern.fullmatch(value):
            raise PaasError(f"invalid value {value!r}: use {what}")
        return value

    return check


def _on_off(ctx: Context, value: str) -> str:
    if value not in ("on", "off"):
        raise PaasError(f"use on or off, not {value!r}")
    return value


_time = _matching(_TIME, "a time like 30s, 500ms or 2m")
_size = _matching(_SIZE, "a size like 8k, 10m or 1g")
# Dokku's key -> (nginx directive, check)
NGINX_PROPERTIES = {
    "client-body-timeout": ("client_body_timeout", _time),
    "client-header-timeout": ("client_header_timeout", _time),
    "keepalive-timeout": ("keepalive_timeout", _time),
    "lingering-timeout": ("lingering_timeout", _time),
    "send-timeout": ("send_timeout", _time),
    "proxy-connect-timeout": ("proxy_connect_timeout", _time),
    "proxy-read-timeout": ("proxy_read_timeout", _time),
    "proxy-send-timeout": ("proxy_send_timeout", _time),
    "client-max-body-size": ("client_max_body_size", _size),
    "proxy-buffer-size": ("proxy_buffer_size", _size),
    "proxy-busy-buffers-size": ("proxy_busy_buffers_size", _size),
    "proxy-buffers": ("proxy_buffers", _matching(_BUFFERS, "a count and a size, like '16 16k'")),
    "proxy-buffering": ("proxy_buffering", _on_off),
    "underscore-in-headers": ("underscores_in_headers", _on_off),
}


def nginx_directives(ctx: Context, app: App) -> list[str]:
    """The server-level directives the app's (or the server's) `nginx` properties ask for."""
    out = []
    for key, (name, _check) in NGINX_PROPERTIES.items():
        own = properties.raw(ctx, app, "nginx", key) or properties.global_raw(ctx, "nginx", key)
        if own:
            out.append(f"{name} {own}")
    return out


def _rebuild(ctx: Context, app: App | None, log: BuildLog) -> None:
    """A change takes effect at once (`nginx -t` first: a value nginx refuses is put back)."""
    for target in [app] if app is not None else ctx.store.list_apps():
        sync_app_route(ctx, target.name)


properties.register(
    properties.Namespace(
        "nginx",
        props=tuple(
            properties.Prop(
                key,
                default=HTTP_DEFAULTS.get(name) or NGINX_DEFAULTS[name],
                check=check,
                changed=_rebuild,
            )
            for key, (name, check) in NGINX_PROPERTIES.items()
        ),
    )
)
