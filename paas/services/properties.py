"""Dokku's property model: one store and one report for every namespace's settings.

`<namespace>:set [--global] [<app>] <key> [<value>]` stores a value for one app or for the whole
server (no value unsets it); `<namespace>:report` shows, for each property, the app's raw value,
the global one and the computed one (the app's, else the global, else the default), plus the
namespace's read-only facts. Each namespace is declared once, next to the service whose rule it
feeds (checks.py, git.py, ...), with its properties' defaults and checks; what a property means is
read everywhere through `value`, so a rule never asks the store itself.

An app's values live in app_settings (`<namespace>.<key>`, or a property's own older setting name);
global values in global_settings. Setting an app's value needs the permission the table gives
`<namespace>:set`; a global value is the server's, so admins only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import NotFound, PaasError, PermissionDenied
from paas.services import access, lookup
from paas.store import App

MAX_VALUE = 1024  # no property holds more; a value is one line
GLOBAL = "--global"

Default = str | Callable[[Context], str]
Check = Callable[[Context, str], str]
Changed = Callable[[Context, App | None, BuildLog], None]


@dataclass(frozen=True)
class Prop:
    """One settable property. `default` is the computed value when neither the app nor the server
    sets one (a function when it depends on the server's settings); `check` validates a value and
    returns it normalised (raising PaasError); `scopes` says where it may be set; `setting` is the
    app_settings key of a property that predates this model. `changed` sets a change in motion
    (moving the app, rebuilding its route); when it fails, the old value is put back. With
    `empty_disables`, an app's value set to nothing is kept as "" (off) instead of falling back
    (Dokku's `git:set <app> rev-env-var`). `computed` replaces raw-else-global-else-default for an
    app where what runs says more (the scheduler an app runs on). An `admin` property names the
    host's own files or addresses (nginx's log paths, bind addresses): only an admin sets it,
    for one app as for the server."""

    key: str
    default: Default = ""
    check: Check | None = None
    scopes: tuple[str, ...] = ("app", "global")
    setting: str | None = None
    changed: Changed | None = None
    empty_disables: bool = False
    computed: Callable[[Context, App], str] | None = None
    admin: bool = False


@dataclass(frozen=True)
class Namespace:
    """A namespace's properties and its read-only facts (`info`: per app, `global_info`: server)."""

    name: str
    props: tuple[Prop, ...] = ()
    info: Callable[[Context, App], dict[str, str]] | None = None
    global_info: Callable[[Context], dict[str, str]] | None = None

    def prop(self, key: str) -> Prop:
        for p in self.props:
            if p.key == key:
                return p
        known = ", ".join(p.key for p in self.props) or "none"
        raise PaasError(f"unknown {self.name} property {key!r}; known: {known}")


_NAMESPACES: dict[str, Namespace] = {}


def register(namespace: Namespace) -> Namespace:
    """Declare a namespace (once, at import of the service that owns it)."""
    if _NAMESPACES.get(namespace.name, namespace) is not namespace:
        raise PaasError(f"property namespace {namespace.name!r} is declared twice")
    _NAMESPACES[namespace.name] = namespace
    return namespace


def namespaces() -> dict[str, Namespace]:
    return dict(_NAMESPACES)


def namespace(name: str) -> Namespace:
    try:
        return _NAMESPACES[name]
    except KeyError:
        raise PaasError(f"unknown property namespace {name!r}") from None


def _setting(ns: Namespace, prop: Prop) -> str:
    return prop.setting or f"{ns.name}.{prop.key}"


def _default(ctx: Context, prop: Prop) -> str:
    return prop.default(ctx) if callable(prop.default) else prop.default


def raw(ctx: Context, app: App, ns_name: str, key: str) -> str:
    """The app's own value ("" when it sets none)."""
    ns = namespace(ns_name)
    return ctx.store.get_setting(app.id, _setting(ns, ns.prop(key))) or ""


def global_raw(ctx: Context, ns_name: str, key: str) -> str:
    """The server's value ("" when it sets none)."""
    ns = namespace(ns_name)
    return ctx.store.get_global_setting(_setting(ns, ns.prop(key))) or ""


def own_or_global(ctx: Context, app: App, ns_name: str, keys: list[str]) -> dict[str, str]:
    """Each key's raw value: the app's, else the server's, else "" (two queries for all)."""
    ns = namespace(ns_name)
    setting = {key: _setting(ns, ns.prop(key)) for key in keys}
    own = ctx.store.get_settings(app.id, list(setting.values()))
    server = ctx.store.get_global_settings(list(setting.values()))
    return {key: own.get(name) or server.get(name) or "" for key, name in setting.items()}


def value(ctx: Context, app: App | None, ns_name: str, key: str) -> str:
    """The computed value: the app's, else the server's, else the default."""
    ns = namespace(ns_name)
    prop = ns.prop(key)
    if app is not None and prop.computed is not None:
        return prop.computed(ctx, app)
    if app is not None and "app" in prop.scopes:
        own = ctx.store.get_setting(app.id, _setting(ns, prop))
        if own or (own is not None and prop.empty_disables):
            return own
    if "global" in prop.scopes:
        server = ctx.store.get_global_setting(_setting(ns, prop))
        if server:
            return server
    return _default(ctx, prop)


def flag(ctx: Context, app: App | None, ns_name: str, key: str) -> bool:
    """A computed true/false property."""
    return value(ctx, app, ns_name, key) == "true"


def record(ctx: Context, app: App, ns_name: str, key: str, new: str | None) -> None:
    """A value the platform itself keeps (git:from-image's source image): no check, no event."""
    ns = namespace(ns_name)
    ctx.store.set_setting(app.id, _setting(ns, ns.prop(key)), new or None)


def set_value(
    ctx: Context, ns_name: str, app_name: str | None, key: str, new: str | None, log: BuildLog | None = None
) -> App | None:
    """`<ns>:set <app> <key> [<value>]`, or with app_name None `<ns>:set --global ...`."""
    ns = namespace(ns_name)
    operation = f"{ns.name}:set"
    app = None
    if app_name is None:
        if not access.is_admin(ctx):
            raise PermissionDenied(f"only an admin may set global {ns.name} properties")
    else:
        app = access.authorize(ctx, app_name, operation)
    prop = ns.prop(key)
    if prop.admin and app is not None and not access.is_admin(ctx):
        raise PermissionDenied(f"only an admin may set {ns.name} {prop.key}: it names the host's own")
    scope = "app" if app is not None else "global"
    if scope not in prop.scopes:
        where = "an app" if scope == "app" else "the whole server (--global)"
        raise PaasError(f"{ns.name} property {prop.key!r} cannot be set for {where}")
    if new is not None:
        new = new.strip()
        if len(new) > MAX_VALUE or not new.isprintable():
            raise PaasError(f"{prop.key}: a value is one line of printable text, at most {MAX_VALUE} long")
        new = (prop.check(ctx, new) if prop.check else new) if new else None
    if new is None and app is not None and prop.empty_disables:
        new = ""
    setting = _setting(ns, prop)
    store = ctx.store
    if app is not None:
        old = store.get_setting(app.id, setting)
        store.set_setting(app.id, setting, new)
    else:
        old = store.get_global_setting(setting)
        store.set_global_setting(setting, new)
    if prop.changed is not None:
        try:
            prop.changed(ctx, app, log or BuildLog())
        except BaseException:
            if app is not None:
                store.set_setting(app.id, setting, old)
            else:
                store.set_global_setting(setting, old)
            raise
    detail = f"{'--global ' if app is None else ''}{prop.key} {new if new else '(unset)'}"
    store.add_event(app.name if app else None, ctx.actor, operation, detail[:200])
    return app


def report(ctx: Context, ns_name: str, app_name: str | None) -> dict[str, str]:
    """Every flag of the report as Dokku names it (`<ns>-<key>`, `<ns>-global-<key>`,
    `<ns>-computed-<key>`, then the facts), for an app or (None) for the server."""
    ns = namespace(ns_name)
    out: dict[str, str] = {}
    if app_name is None:
        for p in ns.props:
            if "global" in p.scopes:
                out[f"{ns.name}-global-{p.key}"] = global_raw(ctx, ns.name, p.key)
                out[f"{ns.name}-computed-{p.key}"] = value(ctx, None, ns.name, p.key)
        facts = ns.global_info(ctx) if ns.global_info else {}
    else:
        app = access.authorize(ctx, app_name, f"{ns.name}:report")
        for p in ns.props:
            if "app" in p.scopes:
                out[f"{ns.name}-{p.key}"] = raw(ctx, app, ns.name, p.key)
            if "global" in p.scopes:
                out[f"{ns.name}-global-{p.key}"] = global_raw(ctx, ns.name, p.key)
            out[f"{ns.name}-computed-{p.key}"] = value(ctx, app, ns.name, p.key)
        facts = ns.info(ctx, app) if ns.info else {}
    for k, v in facts.items():
        out[f"{ns.name}-{k}"] = v
    return out


def report_all(ctx: Context, ns_name: str) -> dict[str, dict[str, str]]:
    """The report of every app the actor may view (an empty dict: there is none)."""
    out = {}
    for app in lookup.list_apps(ctx):
        try:
            out[app.name] = report(ctx, ns_name, app.name)
        except NotFound:  # destroyed meanwhile
            continue
    return out
