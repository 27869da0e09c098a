"""Custom domains, served by the router next to `<app>.<PAAS_DOMAIN>`; one app per domain."""

from __future__ import annotations

import sqlite3

from paas.core import validation
from paas.core.context import Context
from paas.errors import Conflict, NotFound, PaasError
from paas.services import access
from paas.services.locks import app_lock
from paas.services.routing import sync_app_route


def list_domains(ctx: Context, app_name: str) -> list[str]:
    app = access.authorize(ctx, app_name, "domains")
    return ctx.store.list_domains(app.id)


def _set(ctx: Context, app_name: str, compute, action: str, detail: str) -> list[str]:  # type: ignore[no-untyped-def]
    app = access.authorize(ctx, app_name, action)  # the action is the command's name
    with app_lock(ctx, app.name):
        current = ctx.store.list_domains(app.id)
        wanted = sorted(set(compute(current)))
        for host in wanted:
            owner = ctx.store.domain_owner(host)
            if owner is not None and owner != app.name:
                raise Conflict(f"{host} already belongs to app {owner}")
            if host not in current:  # what is already routed keeps routing; nginx fences it
                check_claim(ctx, app.name, host)
        try:
            ctx.store.replace_domains(app.id, wanted)
        except sqlite3.IntegrityError:  # another app took one of them meanwhile
            raise Conflict("one of these domains was just added to another app") from None
        try:
            sync_app_route(ctx, app.name)
        except PaasError:
            ctx.store.replace_domains(app.id, current)
            raise
        ctx.store.add_event(app.name, ctx.actor, action, detail)
        return wanted


def _under(host: str, parent: str) -> bool:
    return host == parent or host.endswith("." + parent)


def check_claim(ctx: Context, app_name: str, host: str) -> None:
    """Refuse a custom domain that would take names that are not this app's to take.

    Names under PAAS_DOMAIN are the apps' default addresses (`<app>.<domain>`, and the app's
    own subdomains): only `<app>.<domain>` and below belong to `app`. A wildcard on a parent of
    PAAS_DOMAIN (`*.example.com` for `apps.example.com`) would cover every app's address, and
    the dashboard's host (and anything under it, which could set cookies for it) is nobody's."""
    domain = ctx.settings.domain
    wildcard = host.startswith("*.")
    base = host[2:] if wildcard else host
    dashboard = ctx.settings.dashboard_host
    if _under(base, dashboard) or (wildcard and _under(dashboard, base)):
        raise Conflict(f"{host} would take the dashboard's address {dashboard}")
    if base == domain or (wildcard and _under(domain, base)):
        raise Conflict(f"{host} would capture every app's default address under {domain}")
    if _under(base, domain):
        label = base[: -len(domain) - 1].rsplit(".", 1)[-1]
        if label != app_name:
            raise Conflict(
                f"{host} lies under {label}.{domain}, the default address of app {label}:"
                f" {app_name} may only use names under {app_name}.{domain}"
            )


def add_domains(ctx: Context, app_name: str, domains: list[str]) -> list[str]:
    access.authorize(ctx, app_name, "domains:add")  # first: a refusal says nothing of the input
    if not domains:
        raise PaasError("give one or more domains")
    hosts = [validation.domain(d) for d in domains]
    return _set(ctx, app_name, lambda cur: [*cur, *hosts], "domains:add", " ".join(hosts))


def remove_domains(ctx: Context, app_name: str, domains: list[str]) -> list[str]:
    access.authorize(ctx, app_name, "domains:remove")
    if not domains:
        raise PaasError("give one or more domains")
    hosts = [validation.domain(d) for d in domains]
    existing = list_domains(ctx, app_name)
    missing = [h for h in hosts if h not in existing]
    if missing:
        raise NotFound(f"{app_name} has no domain {', '.join(missing)}")
    return _set(
        ctx, app_name, lambda cur: [h for h in cur if h not in hosts], "domains:remove", " ".join(hosts)
    )


def set_domains(ctx: Context, app_name: str, domains: list[str]) -> list[str]:
    access.authorize(ctx, app_name, "domains:set")
    hosts = [validation.domain(d) for d in domains]
    return _set(ctx, app_name, lambda cur: hosts, "domains:set", " ".join(hosts))


def clear_domains(ctx: Context, app_name: str) -> list[str]:
    return _set(ctx, app_name, lambda cur: [], "domains:clear", "")
