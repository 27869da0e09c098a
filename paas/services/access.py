"""Who may do what to which app: the one permission table, checked at every service entry point.

Heroku's permission names. Every collaborator of an app may `view` it; `deploy`, `operate` and
`manage` are given on top. The app's owner has every permission, `owner` included (transfer);
admins (and root on the host) may do everything everywhere. An actor who cannot view an app is
told it does not exist, the same words as for a name nobody uses, so names cannot be probed.
SSH, the host CLI, the dashboard, the API and plugins all call `authorize`/`require` here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from paas.core import validation
from paas.core.context import Context
from paas.errors import NotFound, PaasError, PermissionDenied
from paas.store import App, Grant, User, now

PERMISSIONS = ("view", "deploy", "operate", "manage")
OWNER = "owner"  # not grantable: only the owner (and admins) may transfer an app
DEFAULT_GRANT = ("view", "deploy", "operate")
ROLES = ("none", *PERMISSIONS, OWNER, "admin")  # what the access-matrix test plays

# operation (a command's name, or an API-only operation) -> the permission it needs on its app
OPERATIONS: dict[str, str] = {
    # view
    "apps:info": "view",
    "ps": "view",
    "ps:report": "view",
    "releases": "view",
    "releases:info": "view",
    "logs": "view",
    "domains": "view",
    "domains:report": "view",
    "events": "view",  # with --app (or the API's per-app events)
    "config": "view",  # keys only: values need deploy
    "config:show": "view",
    "metrics": "view",
    "checks:report": "view",
    "resource:report": "view",
    "maintenance:report": "view",
    "cron:list": "view",
    "apps:exists": "view",
    "apps:report": "view",
    "report": "view",  # without an app: the apps the actor may view
    "url": "view",
    "urls": "view",
    "config:keys": "view",
    "certs:report": "view",
    "scheduler:report": "view",
    # deploy
    "git:push": "deploy",
    "git:fetch": "deploy",
    "config:get": "deploy",
    "config:set": "deploy",
    "config:unset": "deploy",
    "config:values": "deploy",  # reading the values with `config`
    "run": "deploy",
    "releases:rollback": "deploy",
    "builds:output": "deploy",
    "repo:purge-cache": "deploy",
    "cron:run": "deploy",
    "config:export": "deploy",  # values
    "config:clear": "deploy",
    "run:detached": "deploy",
    "enter": "deploy",  # a shell in a running process: as much as `run`
    "ps:rebuild": "deploy",
    # operate
    "apps:scale": "operate",
    "ps:scale": "operate",
    "ps:restart": "operate",
    "ps:stop": "operate",
    "ps:start": "operate",
    "ps:set": "operate",
    "maintenance:on": "operate",
    "maintenance:off": "operate",
    "checks:enable": "operate",
    "checks:disable": "operate",
    # manage
    "domains:add": "manage",
    "domains:remove": "manage",
    "domains:set": "manage",
    "domains:clear": "manage",
    "access": "manage",
    "access:add": "manage",
    "access:update": "manage",
    "access:remove": "manage",
    "apps:rename": "manage",
    "apps:destroy": "manage",
    "scheduler:set": "manage",
    "storage:list": "manage",
    "storage:mount": "manage",
    "storage:unmount": "manage",
    "resource:limit": "manage",
    "resource:limit-clear": "manage",
    "certs:add": "manage",
    "certs:update": "manage",
    "certs:remove": "manage",
    "certs:generate": "manage",
    "certs:redirect": "manage",
    "certs:hsts": "manage",
    "letsencrypt:enable": "manage",
    "letsencrypt:disable": "manage",
    "letsencrypt:auto-renew": "manage",  # without an app: every app's (admins)
    "postgres:link": "manage",  # and an admin's: services belong to the server (ADMIN_ONLY)
    "postgres:unlink": "manage",
    "redis:link": "manage",
    "redis:unlink": "manage",
    # owner
    "apps:transfer": OWNER,
    # Dokku's property model and the commands beside it (issue 34)
    "git:report": "view",
    "builder:report": "view",
    "builder-herokuish:report": "view",
    "app-json:report": "view",
    "buildpacks:report": "view",
    "buildpacks:list": "view",
    "git:set": "deploy",
    "git:from-archive": "deploy",
    "git:from-image": "deploy",
    "builder:set": "deploy",
    "builder-herokuish:set": "deploy",
    "app-json:set": "deploy",
    "buildpacks:add": "deploy",
    "buildpacks:set": "deploy",
    "buildpacks:remove": "deploy",
    "buildpacks:clear": "deploy",
    "repo:gc": "deploy",
    "cleanup": "deploy",  # without an app: admins (every app)
    "checks:skip": "operate",
    "checks:run": "operate",
    "nginx:report": "view",
    "nginx:set": "manage",  # routing, as domains are
}

# Commands that name no app (or only optionally, and then check through the table): each has its
# own rule (admin only, host only, or shows only what the actor may view).
APP_LESS = frozenset(
    {
        "apps:create",  # create rights: everyone unless PAAS_APP_CREATE=admins
        "apps:list",  # the apps the actor may view
        "events",  # without --app: events of the apps the actor may view (admins: all)
        "help",
        "doctor",
        "plugins:list",
        "server",
        "router:stop",
        "stack:build",
        "ssh-keys:add",
        "ssh-keys:list",
        "ssh-keys:remove",
        "users:add",
        "users:list",
        "users:passwd",
        "users:remove",
        "tokens:create",
        "tokens:list",
        "tokens:revoke",
        "storage:ensure-directory",
        "events:on",
        "events:off",
        "events:list",  # `events`: the events of the apps the actor may view
        "letsencrypt:list",  # the apps the actor may view
        "version",
    }
)

# Backing services belong to the server, not to one app: only admins create, destroy, read,
# back up or link them (linking also needs `manage` on the app). A service of one's own for
# collaborators is not built yet.
SERVICE_COMMANDS = tuple(
    f"{kind}:{verb}"
    for kind in ("postgres", "redis")
    for verb in (
        "create",
        "destroy",
        "list",
        "info",
        "connect",
        "export",
        "import",
        "backup",
        "backups",
        "restore",
        "backup-schedule",
        "logs",
        "link",
        "unlink",
    )
)
# The swarm's nodes belong to the server too (and the join command prints its join token).
NODE_COMMANDS = ("nodes:list", "nodes:join-command", "nodes:drain", "nodes:activate", "nodes:remove")
ADMIN_ONLY = frozenset((*SERVICE_COMMANDS, *NODE_COMMANDS))


# `paas` (a reserved app name) stands for the dashboard in the certificate commands: admins only.
DASHBOARD_SUBJECT = "paas"
DASHBOARD_OPERATIONS = frozenset(op for op in OPERATIONS if op.startswith(("certs:", "letsencrypt:")))


def require_admin(ctx: Context, operation: str) -> None:
    if not is_admin(ctx):
        raise PermissionDenied(f"only an admin may run {operation} for the dashboard")


def declare(operation: str, permission: str) -> None:
    """A third-party plugin's command joins the table (it cannot change a core entry)."""
    if permission not in (*PERMISSIONS, OWNER):
        raise PaasError(f"unknown permission {permission!r}: use {', '.join((*PERMISSIONS, OWNER))}")
    if OPERATIONS.get(operation, permission) != permission or operation in APP_LESS:
        raise PaasError(f"{operation} is already in the permission table")
    OPERATIONS[operation] = permission


def _user_id(ctx: Context) -> int | None:
    """The acting user's id; a context that carries only a name is looked up each time, so a
    removed user loses access at once."""
    if ctx.user_id is not None:
        return ctx.user_id
    if ctx.actor and validation.KEY_NAME_RE.fullmatch(ctx.actor):
        user = ctx.store.get_user(ctx.actor)
        return user.id if user else None
    return None


def is_admin(ctx: Context) -> bool:
    return ctx.is_admin or ctx.on_host


def permissions_of(ctx: Context, app: App) -> frozenset[str]:
    """What the actor may do with the app: empty when they may not even see it."""
    if is_admin(ctx):
        return frozenset((*PERMISSIONS, OWNER))
    uid = _user_id(ctx)
    if uid is None:
        return frozenset()
    if app.owner_id == uid:
        return frozenset((*PERMISSIONS, OWNER))
    grant = ctx.store.grant_of(app.id, uid)
    return frozenset() if grant is None else frozenset(("view", *grant))


def _denied(ctx: Context, name: str, permission: str) -> None:
    ctx.store.add_event(None, ctx.actor, "access:denied", f"{permission} on {name}")


def require(ctx: Context, app_name: str, permission: str) -> App:
    """The app, if the actor has `permission` on it. NotFound when they cannot view it (whether or
    not it exists), PermissionDenied naming the permission when they can."""
    validation.app_name(app_name)
    app = ctx.store.get_app(app_name)
    granted = permissions_of(ctx, app) if app is not None else frozenset()
    if not granted:
        _denied(ctx, app_name, permission)
        raise NotFound(f"app {app_name!r} does not exist")
    if permission not in granted:
        _denied(ctx, app_name, permission)
        raise PermissionDenied(f"you need the {permission!r} permission on {app_name!r}")
    ctx.checked.add((app.id, permission))  # type: ignore[union-attr]
    return app  # type: ignore[return-value]


def authorize(ctx: Context, app_name: str, operation: str) -> App:
    """`require` with the permission the table gives the operation (KeyError for one it lacks:
    a new entry point must be given its permission)."""
    return require(ctx, app_name, OPERATIONS[operation])


def can(ctx: Context, app: App, permission: str) -> bool:
    """For showing only what may be used (the POST is refused anyway by `require`)."""
    return permission in permissions_of(ctx, app)


@dataclass(frozen=True)
class Allowed:
    """What one actor may do with one app, asked by operation name: `allowed("ps:scale")`.
    The dashboard shows a button only when this says yes; the POST is refused anyway by
    `authorize`. An operation the table lacks is a KeyError, as in `authorize`."""

    granted: frozenset[str]
    admin: bool = False

    def __call__(self, operation: str) -> bool:
        return OPERATIONS[operation] in self.granted

    def __bool__(self) -> bool:  # may the actor see the app at all
        return bool(self.granted)

    def describe(self) -> str:
        """What the app page tells the actor about their own access."""
        if self.admin:
            return "admin: every permission"
        if OWNER in self.granted:
            return "owner: every permission"
        return ", ".join(p for p in PERMISSIONS if p in self.granted) or "none"


def allowed_on(ctx: Context, app_name: str) -> Allowed:
    """The actor's rights on an app by name: nothing for an app they cannot view (or none such).
    Asking records no denial: nothing was attempted."""
    app = ctx.store.get_app(app_name) if validation.APP_NAME_RE.fullmatch(app_name or "") else None
    return Allowed(permissions_of(ctx, app) if app is not None else frozenset(), is_admin(ctx))


def allowed_on_apps(ctx: Context, apps: Iterable[App]) -> dict[str, Allowed]:
    """`allowed_on` for many apps in one query (the app list): the same answers."""
    admin = is_admin(ctx)
    uid = None if admin else _user_id(ctx)
    grants = ctx.store.grants_of_user(uid) if uid is not None else {}
    every = frozenset((*PERMISSIONS, OWNER))
    out = {}
    for app in apps:
        if admin or (uid is not None and app.owner_id == uid):
            granted = every
        elif app.id in grants:
            granted = frozenset(("view", *grants[app.id]))
        else:
            granted = frozenset()
        out[app.name] = Allowed(granted, admin)
    return out


def allowed(ctx: Context, app_name: str, operation: str) -> bool:
    """Whether `authorize(ctx, app_name, operation)` would let the actor through."""
    return allowed_on(ctx, app_name)(operation)


def may_create(ctx: Context) -> bool:
    """Whether `require_create` would let the actor create an app (the "Create app" form)."""
    return ctx.settings.app_create != "admins" or is_admin(ctx)


def visible_apps(ctx: Context, apps: Iterable[App]) -> list[App]:
    if is_admin(ctx):
        return list(apps)
    uid = _user_id(ctx)
    ids = ctx.store.visible_app_ids(uid) if uid is not None else set()
    return [a for a in apps if a.id in ids]


def still_allowed(ctx: Context) -> bool:
    """Whether everything this context was allowed still is (an open SSH session re-checks)."""
    if not ctx.checked or is_admin(ctx):
        return True
    for app_id, permission in list(ctx.checked):
        app = ctx.store.get_app_by_id(app_id)
        if app is None or permission not in permissions_of(ctx, app):
            return False
    return True


def require_create(ctx: Context) -> int | None:
    """Whether the actor may create an app (apps:create, or pushing a new name); the owner's id."""
    if ctx.settings.app_create == "admins" and not is_admin(ctx):
        _denied(ctx, "-", "create")
        raise PermissionDenied("only an admin may create apps here (PAAS_APP_CREATE=admins)")
    return _user_id(ctx)


# collaborators
def parse_permissions(text: str | None) -> tuple[str, ...]:
    """`view,deploy` -> ('view', 'deploy'); view is always included (every collaborator sees the app)."""
    if text is None:
        return DEFAULT_GRANT
    wanted = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PERMISSIONS]
    if unknown or not wanted:
        raise PaasError(f"unknown permission {(unknown or [text])[0]!r}: use {', '.join(PERMISSIONS)}")
    return tuple(p for p in PERMISSIONS if p in wanted or p == "view")


def _collaborator(ctx: Context, user_name: str) -> User:
    validation.user_name(user_name)
    user = ctx.store.get_user(user_name)
    if user is None:
        raise NotFound(f"no user named {user_name!r}")
    return user


def _audit(ctx: Context, app: App, action: str, detail: str) -> None:
    """Access changes go to the admins' part of the audit log, naming the app in the detail."""
    ctx.store.add_event(None, ctx.actor, action, f"{app.name}: {detail}")


def list_access(ctx: Context, app_name: str) -> dict:
    """The owner and every collaborator with their permissions (also the JSON shape)."""
    app = authorize(ctx, app_name, "access")
    owner = ctx.store.get_user_by_id(app.owner_id) if app.owner_id is not None else None
    return {
        "app": app.name,
        "owner": owner.name if owner else None,
        "collaborators": [
            {"user": g.user, "permissions": list(g.permissions)} for g in ctx.store.grants(app.id)
        ],
    }


def add_access(ctx: Context, app_name: str, user_name: str, permissions: str | None = None) -> Grant:
    app = authorize(ctx, app_name, "access:add")
    user = _collaborator(ctx, user_name)
    perms = parse_permissions(permissions)
    if user.id == app.owner_id:
        raise PaasError(f"{user.name} owns {app.name} and has every permission")
    if ctx.store.grant_of(app.id, user.id) is not None:
        raise PaasError(f"{user.name} already has access to {app.name}: use access:update")
    ctx.store.set_grant(app.id, user.id, perms, now())
    _audit(ctx, app, "access:add", f"{user.name} {','.join(perms)}")
    return next(g for g in ctx.store.grants(app.id) if g.user_id == user.id)


def update_access(ctx: Context, app_name: str, user_name: str, permissions: str) -> Grant:
    app = authorize(ctx, app_name, "access:update")
    user = _collaborator(ctx, user_name)
    perms = parse_permissions(permissions)
    if ctx.store.grant_of(app.id, user.id) is None:
        raise NotFound(f"{user.name} has no access to {app.name}: use access:add")
    ctx.store.set_grant(app.id, user.id, perms, now())
    _audit(ctx, app, "access:update", f"{user.name} {','.join(perms)}")
    return next(g for g in ctx.store.grants(app.id) if g.user_id == user.id)


def remove_access(ctx: Context, app_name: str, user_name: str) -> None:
    """Takes effect at once: their next command, API request, or open SSH session is refused."""
    app = authorize(ctx, app_name, "access:remove")
    user = _collaborator(ctx, user_name)
    if user.id == app.owner_id:
        raise PaasError(f"{user.name} owns {app.name}: transfer it first (apps:transfer)")
    if not ctx.store.remove_grant(app.id, user.id):
        raise NotFound(f"{user.name} has no access to {app.name}")
    _audit(ctx, app, "access:remove", user.name)


def transfer(ctx: Context, app_name: str, user_name: str) -> App:
    """The user becomes the owner; the previous owner keeps view, deploy and operate (as Heroku)."""
    app = authorize(ctx, app_name, "apps:transfer")
    user = _collaborator(ctx, user_name)
    if user.id == app.owner_id:
        raise PaasError(f"{user.name} already owns {app.name}")
    ctx.store.transfer_app(app.id, user.id)
    if app.owner_id is not None and ctx.store.get_user_by_id(app.owner_id) is not None:
        ctx.store.set_grant(app.id, app.owner_id, DEFAULT_GRANT, now())
    _audit(ctx, app, "apps:transfer", f"to {user.name}")
    ctx.store.add_event(app.name, ctx.actor, "apps:transfer", f"to {user.name}")
    return ctx.store.get_app(app.name)  # type: ignore[return-value]
