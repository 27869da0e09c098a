"""The route of an app, computed in one function: hostnames, running web upstreams, plugin extras,
and the app's `nginx` properties (Dokku's `nginx:set`).

`nginx:set [--global] [<app>] <key> [<value>]` sets timeouts, buffers, the body size and
underscores in headers (each a server-level directive of the app), and the X-Forwarded-*
headers, HSTS, bind addresses, log paths and the upstream's keepalive (ProxyOptions, rendered by
the router). Every value is checked against its own syntax first (no quotes, spaces, braces or
semicolons reach nginx; a header value is a plain word or one of a few variables), and a change
rebuilds the app's route (every app's, for a global one) through `nginx -t`. Properties that
name the host's files or addresses (log paths, bind addresses, the nginx command) are set by an
admin only, even for one app: nginx's master opens those files as root. Dokku's template
properties (`nginx-conf-sigil-path`, `disable-custom-config`) and `nginx-service-command` are
kept and reported, for scripts written for Dokku; nothing here reads them (there is no custom
nginx template, and the managed nginx is the platform's own).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

from paas.core import routes
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.core.routes import ProxyOptions, Route, RouteExtras
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
        extras.proxy = proxy_options(ctx, app)
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
    own = properties.own_or_global(ctx, app, "nginx", list(NGINX_PROPERTIES))
    return [f"{name} {own[key]}" for key, (name, _check) in NGINX_PROPERTIES.items() if own[key]]


def _boolean(ctx: Context, value: str) -> str:
    if value not in ("true", "false"):
        raise PaasError(f"use true or false, not {value!r}")
    return value


def _whole(low: int, high: int) -> properties.Check:
    def check(ctx: Context, value: str) -> str:
        if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
            raise PaasError(f"use a whole number from {low} to {high}, not {value!r}")
        return str(int(value))

    return check


def _forwarded(ctx: Context, value: str) -> str:
    return routes.forwarded_value(value)


def _local(address: str) -> None:
    """nginx can listen only on an address of this host: one a socket can bind to."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            raise PaasError(f"{address} is not an address of this host: {exc.strerror}") from None


def _bind(version: int) -> properties.Check:
    def check(ctx: Context, value: str) -> str:
        address = routes.bind_address(value, version)
        _local(address)
        return address

    return check


def _forbidden(ctx: Context) -> tuple[Path, ...]:
    """The platform's own folders: no log of nginx's is written there."""
    return (ctx.settings.data_dir, ctx.settings.nginx_dir)


def _access_log(ctx: Context, value: str) -> str:
    return value if value == "off" else routes.log_path(value, _forbidden(ctx))


def _error_log(ctx: Context, value: str) -> str:
    return routes.log_path(value, _forbidden(ctx))


def _log_format(ctx: Context, value: str) -> str:
    return routes.log_format(value)


_RELATIVE = re.compile(r"^[A-Za-z0-9_.-]{1,100}(?:/[A-Za-z0-9_.-]{1,100}){0,10}$")
_COMMAND = re.compile(r"^/[A-Za-z0-9_.-]{1,100}(?:/[A-Za-z0-9_.-]{1,100}){0,10}$")


def _relative_path(ctx: Context, value: str) -> str:
    if not _RELATIVE.fullmatch(value) or any(part in (".", "..") for part in value.split("/")):
        raise PaasError(f"invalid path {value!r}: a path inside the repository, like nginx.conf.sigil")
    return value


def _command_path(ctx: Context, value: str) -> str:
    if not _COMMAND.fullmatch(value) or any(part in (".", "..") for part in value.split("/")):
        raise PaasError(f"invalid command {value!r}: an absolute path, like /usr/sbin/nginx")
    return value


def _router_log(name: str) -> properties.Default:
    return lambda ctx: str(ctx.settings.nginx_dir / "logs" / name)


# Dokku's key -> (default, check, admin only): read by proxy_options, rendered by the router
OPTION_PROPERTIES: dict[str, tuple[properties.Default, properties.Check, bool]] = {
    "hsts": ("false", _boolean, False),
    "hsts-include-subdomains": ("false", _boolean, False),
    "hsts-max-age": (str(ProxyOptions.hsts_max_age), _whole(0, 999_999_999), False),
    "hsts-preload": ("false", _boolean, False),
    "x-forwarded-for-value": (ProxyOptions.forwarded_for, _forwarded, False),
    "x-forwarded-port-value": (ProxyOptions.forwarded_port, _forwarded, False),
    "x-forwarded-proto-value": (ProxyOptions.forwarded_proto, _forwarded, False),
    "x-forwarded-ssl": ("", _on_off, False),
    "proxy-keepalive": (str(ProxyOptions.keepalive), _whole(0, 1024), False),
    "bind-address-ipv4": (lambda ctx: ctx.settings.http_bind, _bind(4), True),
    "bind-address-ipv6": ("", _bind(6), True),
    "access-log-format": ("combined", _log_format, False),
    "access-log-path": (_router_log("access.log"), _access_log, True),
    "error-log-path": (_router_log("error.log"), _error_log, True),
    # Dokku's, kept and reported: nothing here reads them (see the module's docstring)
    "disable-custom-config": ("false", _boolean, False),
    "nginx-conf-sigil-path": ("nginx.conf.sigil", _relative_path, False),
    "nginx-service-command": (lambda ctx: ctx.settings.nginx_bin, _command_path, True),
}


def proxy_options(ctx: Context, app: App) -> ProxyOptions:
    """What the app's (or the server's) `nginx` properties change beyond plain directives; what
    neither sets keeps the router's own behaviour."""
    own = properties.own_or_global(ctx, app, "nginx", list(OPTION_PROPERTIES))
    base = ProxyOptions()
    hsts = own["hsts"]
    return ProxyOptions(
        forwarded_for=own["x-forwarded-for-value"] or base.forwarded_for,
        forwarded_proto=own["x-forwarded-proto-value"] or base.forwarded_proto,
        forwarded_port=own["x-forwarded-port-value"] or base.forwarded_port,
        forwarded_ssl=own["x-forwarded-ssl"],
        hsts=(hsts == "true") if hsts else None,
        hsts_max_age=int(own["hsts-max-age"] or base.hsts_max_age),
        hsts_include_subdomains=own["hsts-include-subdomains"] == "true",
        hsts_preload=own["hsts-preload"] == "true",
        bind_ipv4=own["bind-address-ipv4"],
        bind_ipv6=own["bind-address-ipv6"],
        access_log=own["access-log-path"],
        access_log_format=own["access-log-format"],
        error_log=own["error-log-path"],
        keepalive=int(own["proxy-keepalive"] or base.keepalive),
    )


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
        )
        + tuple(
            properties.Prop(key, default=default, check=check, changed=_rebuild, admin=admin)
            for key, (default, check, admin) in OPTION_PROPERTIES.items()
        ),
    )
)
