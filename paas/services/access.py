"""Who may do what: the one permission table, checked at the entry of every service function.

Heroku's permission names. Every collaborator of an app may `view` it; `deploy`, `operate` and
`manage` are given on top. The app's owner has every permission, `owner` included (transfer);
admins (and root on the host) may do everything everywhere. An actor who cannot view an app is
told it does not exist, the same words as for a name nobody uses, so names cannot be probed.

Every operation has one rule here: a permission on the app it names (`OPERATIONS`), admins only
(`ADMIN_ONLY`), the owner of the backing service or storage folder it names (`OWNED`), or, for
what names nothing of anyone else's, any signed-in user, whose answer holds only what they may
see (`APP_LESS`). Each public service function says which operation it is in `ENTRIES` and
checks its rule first; each dashboard and API route says which it serves in `ROUTES`. The
tables below are the core's; a plugin, built-in or third-party, adds its own rows when it is
imported (`declare`, through `paas.commands.define(permission=...)` for its commands;
`declare_entries`, `declare_routes`) and can change none, so a plugin turned off leaves no rule
and whatever has no rule is refused (a KeyError in every check: default deny).
`tests/unit/test_doors_table.py` finds every command, route and service function and fails when
one is missing here, and drives each as every role. SSH, the host CLI, the dashboard, the API and
plugins all end in the service functions: a front end may refuse early (for a nicer message),
never instead.
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

# The core's own operations. A plugin's join these tables when the plugin is imported, with the
# rule it declares (`declare`: `paas.commands.define(permission=...)` for its commands), so a
# plugin that is turned off leaves no rule behind: its commands are unknown, its service functions
# refuse (KeyError). `metrics` is the core's (the dashboard's metrics page and API); the metrics
# plugin's command of that name declares the same rule.

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
    "apps:exists": "view",
    "apps:report": "view",
    "report": "view",  # without an app: the apps the actor may view
    "url": "view",
    "urls": "view",
    "config:keys": "view",
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
    "checks:enable": "operate",
    "checks:disable": "operate",
    "checks:set": "operate",  # wait-to-retire (--global: admins only)
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
    "resource:limit": "manage",
    "resource:limit-clear": "manage",
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

# Operations that name no app, or only optionally (then the app's rule above applies too): any
# signed-in user, and the answer holds only what the actor may see, or acts on their own things.
APP_LESS = set(
    {
        "apps:create",  # create rights: everyone unless PAAS_APP_CREATE=admins
        "apps:list",  # the apps the actor may view
        "events",  # without --app: events of the apps the actor may view (admins: all)
        "events:list",  # `events`: the events of the apps the actor may view
        "events:on",  # Dokku's switches: they only say that events are always kept
        "events:off",
        "help",
        "version",
        "plugins:list",
        "ssh-keys:list",  # one's own keys (admins: all)
        "quota:report",  # one's own usage against one's quotas (admins: anyone's)
    }
)

# Backing services and storage folders belong to the user who made them (an app's addon service
# to the user who pushed it): only the owner or an admin may read, change or mount them. Those
# that name an app need its permission from OPERATIONS as well. The core owns none: the plugins
# declare theirs (the datastores' `postgres:info`, `postgres:link`, ...; `storage:mount`).
OWNED: set[str] = set()

# What belongs to the server: its users, keys and tokens, its health, the processes that run it.
# Plugins add theirs (the platform backups, the metrics for Prometheus, the swarm's nodes: the
# join command prints the swarm's join token).
ADMIN_ONLY = set(
    {
        "users:add",
        "users:list",
        "users:passwd",
        "users:remove",
        "users:admin",  # the dashboard's Users page: make or unmake an admin
        "ssh-keys:add",
        "ssh-keys:remove",
        "tokens:create",
        "tokens:list",
        "tokens:revoke",
        "doctor",
        "server",
        "router:stop",
        "stack:build",
        "quota:set",  # per-user quotas: the operator's
    }
)

# `paas` (a reserved app name) stands for the dashboard in the operations a plugin declares with
# `dashboard=True` (the certs plugin's): admins only, and the early check of the app is skipped.
DASHBOARD_SUBJECT = "paas"
DASHBOARD_OPERATIONS: set[str] = set()


# What each public service function is. An operation above: it checks that operation's rule
# first. Or one of these: PURE reads and changes nothing of anyone's (parsing, formatting, names);
# ASK answers what the actor may do from this table (a button shown, an early refusal); SIGN_IN
# decides who the actor is (logins, sessions, tokens, keys); INTERNAL is for other services, the
# plugins' hooks and the server's own loops, after a check of their own or for no actor (no front
# end calls one); JOB is a web deploy job's: `view` on the app and the operation the job runs.
PURE, ASK, SIGN_IN, INTERNAL, JOB = "pure", "ask", "sign-in", "internal", "job"
# A dashboard or API route that is not an operation: PUBLIC answers before sign-in (the login
# page, its CSS); SIGNED_IN shows any signed-in user nothing of anyone else's (logout, "who am I").
PUBLIC, SIGNED_IN = "public", "signed-in"

ENTRIES: dict[str, dict[str, str]] = {
    "access": {
        **dict.fromkeys(
            (
                "known",
                "access_app",
                "require_admin",
                "declare",
                "declare_entries",
                "declare_routes",
                "actor_id",
                "is_admin",
                "permissions_of",
                "require",
                "authorize",
                "can",
                "allowed_on",
                "allowed_on_apps",
                "allowed",
                "may_create",
                "visible_apps",
                "still_allowed",
                "owns",
                "require_owner",
                "may_create_service",
                "require_service_create",
                "require_user",
                "require_create",
            ),
            ASK,
        ),
        "parse_permissions": PURE,
        "user_named": INTERNAL,
        "require_own_access": INTERNAL,
        "list_access": "access",
        "add_access": "access:add",
        "update_access": "access:update",
        "remove_access": "access:remove",
    },
    # Dokku's property model and what sits beside it (issue 34). A property namespace's set and
    # report check `<namespace>:set` / `<namespace>:report`; git's stand for them all here.
    "properties": {
        **dict.fromkeys(
            ("register", "raw", "global_raw", "own_or_global", "value", "flag", "record"), INTERNAL
        ),
        **dict.fromkeys(("namespaces", "namespace"), PURE),
        "set_value": "git:set",  # --global: admins only
        "report": "git:report",
        "report_all": "apps:list",  # the apps the actor may view
    },
    "git": {
        "deploy_branches": "git:push",
        "keep_git_dir": INTERNAL,
        "per_push_keys": INTERNAL,
        "with_rev_env": INTERNAL,
    },
    "builders": {
        "expand": PURE,
        **dict.fromkeys(("buildpack_list", "options", "skip_cleanup"), INTERNAL),
        "add": "buildpacks:add",
        "set_": "buildpacks:set",
        "remove": "buildpacks:remove",
        "clear": "buildpacks:clear",
        "listed": "buildpacks:list",
    },
    "images": {"normalize": PURE, "listed": PURE, "vet": ASK, "ensure_local": INTERNAL},
    "sources": {
        **dict.fromkeys(("limits", "fetch"), INTERNAL),
        "from_archive": "git:from-archive",
        "from_image": "git:from-image",
    },
    "apps": {
        "create_review_app": INTERNAL,
        "remove_app": INTERNAL,
        "create_app": "apps:create",
        "ensure_app": "git:push",
        "app_info": "apps:info",
        "rename_app": "apps:rename",
        "destroy_app": "apps:destroy",
        "transfer": "apps:transfer",
    },
    "checks": {
        "checks_for": PURE,
        "is_disabled": PURE,
        "disabled_types": INTERNAL,
        "run_checks": INTERNAL,
        "set_checks": "checks:enable",  # or checks:disable, checks:skip: the same permission
        "report": "checks:report",
        "downtime_types": INTERNAL,
        "split_types": PURE,
        "run_now": "checks:run",
    },
    "config": {
        "get_config": "config",
        "get_value": "config:get",
        "set_config": "config:set",
        "unset_config": "config:unset",
        "update_config": "config:set",
    },
    "containers": dict.fromkeys(("network_name", "app_network", "container_settings"), INTERNAL),
    "deploy": {"deploy_release": INTERNAL},
    "disk": {
        "human": PURE,
        "learn_docker_root": PURE,
        **dict.fromkeys(("docker_root", "spaces", "require_free"), INTERNAL),
    },
    "disk_usage": {
        "allocated": PURE,
        **dict.fromkeys(("measure", "measure_app", "check", "enforce", "keep_reserve"), INTERNAL),
    },
    "doctor": {"report": "doctor", "fix": "doctor"},
    "domains": {
        "list_domains": "domains",
        "check_claim": INTERNAL,
        "add_domains": "domains:add",
        "remove_domains": "domains:remove",
        "set_domains": "domains:set",
        "clear_domains": "domains:clear",
    },
    "events": {"list_events": "events"},
    "first_deploy": {
        "initial_config": PURE,
        "synced_config": PURE,
        "describe": PURE,
        "prepare": INTERNAL,
        "after_deploy": INTERNAL,
    },
    "formation": {
        "parse_scale_args": PURE,
        "check_changes": PURE,
        "get_formation": "ps",
        "scale": "ps:scale",
    },
    "gc": {"collect": INTERNAL, "cleanup": "cleanup"},
    "jobs": dict.fromkeys(("start", "get", "output", "follow"), JOB),
    "keys": {
        "fingerprint_of_blob": PURE,
        "parse_public_key": PURE,
        "add_key": "ssh-keys:add",
        "list_keys": "ssh-keys:list",
        "remove_key": "ssh-keys:remove",
        "authenticate": SIGN_IN,
        "session_context": SIGN_IN,
    },
    "limits": {
        **dict.fromkeys(("parse_memory", "parse_cpus", "parse_pids", "defaults"), PURE),
        **dict.fromkeys(("stored", "save", "effective"), INTERNAL),
    },
    "locks": {
        **dict.fromkeys(("is_held", "app_lock", "released_since"), INTERNAL),
        "released_path": PURE,
    },
    "logfiles": {"config": PURE, "rotate": INTERNAL},
    "logs": {"check": "logs", "recent": "logs", "follow": "logs", "build_output": "builds:output"},
    "lookup": {
        "get_app": "apps:exists",
        "list_apps": "apps:list",
        "app_url": PURE,
        "app_urls": "urls",
        "hostnames": INTERNAL,
    },
    "metrics": {
        "cpu_percent": PURE,
        "processes_by_app": INTERNAL,  # the metrics plugin's sampler (a server thread)
        "prune": INTERNAL,
        "sample_round": INTERNAL,  # the metrics plugin's sampler (a server thread), every app
        "sample": "metrics",
        "current": "metrics",
        "history": "metrics",
    },
    "moves": {"set_scheduler": "scheduler:set", **dict.fromkeys(("default_scheduler", "shell"), INTERNAL)},
    "oneoff": {"create_oneoff": "run", "start_detached": "run:detached", "enter": "enter"},
    "overview": {"status_of": PURE, "summaries": "apps:list", "summary": "apps:info"},
    "processes": {
        "list_processes": "ps",
        "restart": "ps:restart",
        "stop": "ps:stop",
        "start": "ps:start",
    },
    "push": {
        **dict.fromkeys(
            ("check_push_ref", "check_ref_unmoved", "check_branch_unmoved", "read_manifest"), PURE
        ),
        "build_and_deploy": INTERNAL,
        "push_branch": "git:push",
        "deploy_branch_hint": "git:push",
        "deploy_push": "git:push",
        "rebuild": "ps:rebuild",
        "redeploy_current": "backup:restore",  # the backup plugin's: with it off, refused
    },
    "reconcile": {
        **dict.fromkeys(("reconcile_app", "reconcile_all", "guard_egress"), INTERNAL),
        "last_pass": PURE,  # doctor's: when the server's last pass ran (admins' command)
    },
    "release_phase": dict.fromkeys(
        ("run_oneoff", "run_release_command", "run_predeploy", "run_postdeploy"), INTERNAL
    ),
    "releases": {
        "list_releases": "releases",
        "parse_version": PURE,
        "get_release": INTERNAL,
        "release_info": "releases:info",
        "new_release": INTERNAL,
        "default_formation": PURE,
        "rollback": "releases:rollback",
    },
    "repo": {"purge_cache": "repo:purge-cache", "gc": "repo:gc"},
    "resources": {
        "set_limits": "resource:limit",
        "clear_limits": "resource:limit-clear",
        "report": "resource:report",
    },
    "routing": {
        **dict.fromkeys(
            (
                "router",
                "tagged",
                "app_route",
                "route_app",
                "sync_app_route",
                "sync_dashboard_route",
                "nginx_directives",
                "proxy_options",
            ),
            INTERNAL,
        ),
        "stop_router": "router:stop",
    },
    "schedulers": {
        **dict.fromkeys(
            ("stop_timeout", "by_name", "for_app", "require_ready", "surveyed", "fingerprint"), INTERNAL
        ),
        "known": PURE,
        "validate": PURE,
    },
    "quotas": {
        "report": "quota:report",
        "set_quotas": "quota:set",
        **dict.fromkeys(("parse_assignment", "show", "size_text", "max_cpus", "defaults"), PURE),
        **dict.fromkeys(
            (
                "of_user",
                "usage",
                "user_load",
                "app_load",
                "running_formation",
                "oneoffs_running",
                "oneoff_slot",
                "require_service_slot",
                "disk_used",
                "require_app_slot",
                "require_ceilings",
                "require_disk",
                "require_oneoff",
                "require_room",
                "require_transfer",
            ),
            INTERNAL,
        ),
    },
    "throttle": {"too_many_sessions": PURE, "key_revoked": SIGN_IN, "source_of": PURE},
    "users": {
        "add_user": "users:add",
        "list_users": "users:list",
        "list_accounts": "users:list",
        "set_admin": "users:admin",
        "remove_user": "users:remove",
        "set_password": "users:passwd",
        "create_token": "tokens:create",
        "list_tokens": "tokens:list",
        "revoke_token": "tokens:revoke",
        **dict.fromkeys(
            (
                "throttle_state",
                "login",
                "start_session",
                "session_user",
                "end_session",
                "add_flash",
                "take_flashes",
                "token_user",
                "still_signed_in",
            ),
            SIGN_IN,
        ),
    },
}

# Every dashboard and API route of the core (Flask endpoint) -> its operation; a plugin's
# blueprint declares its own (`declare_routes`).
ROUTES: dict[str, str] = {
    "static": PUBLIC,
    "auth.login": PUBLIC,
    "auth.logout": SIGNED_IN,
    # the dashboard
    "pages.apps": "apps:list",
    "pages.create_app": "apps:create",
    "pages.destroy": "apps:destroy",
    "pages.app": "apps:info",
    "pages.scale": "ps:scale",
    "pages.restart": "ps:restart",
    "pages.stop": "ps:stop",
    "pages.start": "ps:start",
    "pages.config_set": "config:set",
    "pages.config_unset": "config:unset",
    "pages.domain_add": "domains:add",
    "pages.domain_remove": "domains:remove",
    "pages.rollback": "releases:rollback",
    "pages.job": JOB,
    "pages.job_done": JOB,
    "pages.job_stream": JOB,
    "pages.build_output": "builds:output",
    "pages.logs": "logs",
    "pages.log_stream": "logs",
    "pages.metrics": "metrics",
    "pages.access_add": "access:add",
    "pages.access_update": "access:update",
    "pages.access_remove": "access:remove",
    "pages.transfer": "apps:transfer",
    "accounts.users": "users:list",
    "accounts.add": "users:add",
    "accounts.add_key": "ssh-keys:add",
    "accounts.password": "users:passwd",
    "accounts.admin": "users:admin",
    "accounts.remove": "users:remove",
    # the API
    "api.openapi": SIGNED_IN,
    "api.account": SIGNED_IN,
    "api.account_quotas": "quota:report",
    "api.users": "users:list",
    "api.apps": "apps:list",
    "api.create_app": "apps:create",
    "api.app_info": "apps:info",
    "api.destroy": "apps:destroy",
    "api.config": "config",
    "api.config_patch": "config:set",
    "api.formation": "ps",
    "api.formation_batch": "ps:scale",
    "api.formation_one": "ps:scale",
    "api.dynos": "ps",
    "api.restart": "ps:restart",
    "api.releases": "releases",
    "api.rollback": "releases:rollback",
    "api.release": "releases:info",
    "api.build_output": "builds:output",
    "api.job": JOB,
    "api.job_stream": JOB,
    "api.domains": "domains",
    "api.domain_add": "domains:add",
    "api.domain_remove": "domains:remove",
    "api.logs": "logs",
    "api.log_stream": "logs",
    "api.metrics": "metrics",
}


def known(operation: str) -> bool:
    """Whether the operation has a rule in this table."""
    return operation in OPERATIONS or operation in APP_LESS or operation in OWNED or operation in ADMIN_ONLY


def require_admin(ctx: Context, operation: str, what: str | None = None) -> None:
    """The rule of everything in ADMIN_ONLY (and of the dashboard's certificate, and renewing every
    certificate): admins, and root on the host."""
    if not known(operation):
        raise KeyError(operation)
    if not is_admin(ctx):
        _denied(ctx, "-", operation)
        raise PermissionDenied(f"only an admin may {what or 'run ' + operation}")


USER = "user"  # a plugin's operation that names no app: APP_LESS
ADMIN = "admin"  # a plugin's operation for admins only: ADMIN_ONLY
BUILTIN_PREFIX = "paas_plugins."  # a built-in plugin's modules are paas_plugins.<folder>.<module>


def _rule(operation: str) -> tuple[str | None, bool, bool, bool, bool]:
    return (
        OPERATIONS.get(operation),
        operation in APP_LESS,
        operation in OWNED,
        operation in ADMIN_ONLY,
        operation in DASHBOARD_OPERATIONS,
    )


def declare(
    operation: str,
    permission: str | None,
    owned: bool = False,
    app_optional: bool = False,
    dashboard: bool = False,
) -> None:
    """A plugin's operation joins the table (it cannot change an entry there), when the plugin is
    imported: a plugin turned off leaves no rule, so its operations stay refused. `permission`
    on the app its `app` argument names (view, deploy, operate, manage, owner), `user` for one
    that names no app (APP_LESS: any user of the server, and it shows or acts on the actor's own
    things only), or `admin` for one only admins may run (ADMIN_ONLY); `owned` for one on a thing
    of the actor's own that it names (OWNED: the service function checks `require_owner`), with
    an app permission or alone. With an app permission, `app_optional` says the app may be left
    out (then it acts on the actor's own things, as `user`), and `dashboard` that the app may be
    `paas`, the dashboard (admins only). Declaring the same rule again changes nothing."""
    on_app = (*PERMISSIONS, OWNER)
    if permission not in (*on_app, USER, ADMIN, None) or (permission is None and not owned):
        raise PaasError(f"unknown permission {permission!r}: use {', '.join((*on_app, USER, ADMIN))}")
    if permission in (USER, ADMIN) and owned:
        raise PaasError(f"{operation}: an operation of the actor's own things names no app: not owned")
    if (app_optional or dashboard) and permission not in on_app:
        raise PaasError(f"{operation}: only an operation on an app may take no app, or the dashboard")
    wanted = (
        permission if permission in on_app else None,
        permission == USER or app_optional,
        owned,
        permission == ADMIN,
        dashboard,
    )
    if known(operation) and _rule(operation) != wanted:
        raise PaasError(f"{operation} is already in the permission table")
    if permission is not None and permission in on_app:
        OPERATIONS[operation] = permission
    if wanted[1]:
        APP_LESS.add(operation)
    if permission == ADMIN:
        ADMIN_ONLY.add(operation)
    if owned:
        OWNED.add(operation)
    if dashboard:
        DASHBOARD_OPERATIONS.add(operation)


def declare_entries(package: str, entries: dict[str, dict[str, str]]) -> None:
    """What each public service function of a plugin is, as ENTRIES says of the core's: `package`
    is the plugin's (its `__name__`), `entries` maps each of its modules to its functions. Only
    adds: a module already described otherwise is refused."""
    for module, functions in entries.items():
        key = f"{package.removeprefix(BUILTIN_PREFIX)}.{module}"
        if ENTRIES.setdefault(key, functions) != functions:
            raise PaasError(f"{key} is already in the permission table")


def declare_routes(routes: dict[str, str]) -> None:
    """The operation each route of a plugin's blueprint serves (`<blueprint>.<endpoint>`), as
    ROUTES says of the core's. Only adds: a route already there with another rule is refused."""
    for endpoint, operation in routes.items():
        if ROUTES.setdefault(endpoint, operation) != operation:
            raise PaasError(f"route {endpoint} is already in the permission table")


def actor_id(ctx: Context) -> int | None:
    """The acting user's id (None: root on the host, or nobody); a context that carries only a
    name is looked up each time, so a removed user loses access at once."""
    if ctx.user_id is not None:
        return ctx.user_id
    if ctx.actor and validation.KEY_NAME_RE.fullmatch(ctx.actor):
        user = ctx.store.get_user(ctx.actor)
        return user.id if user else None
    return None


def is_admin(ctx: Context) -> bool:
    return ctx.is_admin or ctx.on_host


def access_app(ctx: Context, app: App) -> App:
    """The app whose owner and collaborators decide about `app`: a review app's parent (its
    collaborators get the same permissions on its review apps, no more), else the app itself. A
    review app whose parent is gone (being destroyed with it) is its own owner's."""
    if app.parent_id is None:
        return app
    return ctx.store.get_app_by_id(app.parent_id) or app


def permissions_of(ctx: Context, app: App) -> frozenset[str]:
    """What the actor may do with the app: empty when they may not even see it."""
    if is_admin(ctx):
        return frozenset((*PERMISSIONS, OWNER))
    uid = actor_id(ctx)
    if uid is None:
        return frozenset()
    app = access_app(ctx, app)
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
    uid = None if admin else actor_id(ctx)
    grants = ctx.store.grants_of_user(uid) if uid is not None else {}
    every = frozenset((*PERMISSIONS, OWNER))
    out = {}
    for app in apps:
        decides = app.parent_id if app.parent_id is not None else app.id  # a review app: its parent's
        if admin or (uid is not None and app.owner_id == uid):
            granted = every
        elif decides in grants:
            granted = frozenset(("view", *grants[decides]))
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
    uid = actor_id(ctx)
    ids = ctx.store.visible_app_ids(uid) if uid is not None else set()
    return [a for a in apps if a.id in ids]


def still_allowed(ctx: Context) -> bool:
    """Whether everything this context was allowed still is (an open SSH session re-checks): an
    admin's ends when they are demoted or removed, anyone else's when access to an app goes (an
    app destroyed takes nothing away: a new app by its name has another id)."""
    if ctx.on_host:
        return True
    if ctx.is_admin:
        uid = actor_id(ctx)
        if uid is None:
            return True  # an admin context of the platform's own: no user behind it
        user = ctx.store.get_user_by_id(uid)
        return user is not None and user.is_admin
    if not ctx.checked:
        return True
    for app_id, permission in list(ctx.checked):
        app = ctx.store.get_app_by_id(app_id)
        if app is None:
            continue  # destroyed (by this very session's apps:destroy, perhaps): nothing to reach
        if permission not in permissions_of(ctx, app):
            return False
    return True


def owns(ctx: Context, owner_id: int | None) -> bool:
    """Whether the actor owns something recorded with this owner (admins own everything; a thing
    without an owner, made before owners were kept or whose owner was removed, is the admins')."""
    if is_admin(ctx):
        return True
    uid = actor_id(ctx)
    return uid is not None and owner_id == uid


def require_owner(ctx: Context, owner_id: int | None, operation: str, what: str) -> None:
    """The rule of OWNED operations: `what` (e.g. "postgres service 'db'") is told not to exist to
    anyone but its owner and admins, the same words as for a name nobody uses."""
    if operation not in OWNED:
        raise KeyError(operation)
    if not owns(ctx, owner_id):
        _denied(ctx, what, operation)
        raise NotFound(f"{what} does not exist")


def may_create_service(ctx: Context) -> bool:
    """Whether PAAS_SERVICE_CREATE lets the actor create backing services at all."""
    return ctx.settings.service_create == "users" or is_admin(ctx)


def require_service_create(ctx: Context, operation: str) -> int | None:
    """Who may create a backing service (`postgres:create`, an app.json addon): admins, and with
    PAAS_SERVICE_CREATE=users every user (how many: their `services` quota, quotas.py). The new
    service's owner's id."""
    kind = operation.split(":")[0]
    if is_admin(ctx):
        return actor_id(ctx)
    if not may_create_service(ctx):
        _denied(ctx, "-", operation)
        raise PermissionDenied(f"only an admin may create {kind} services here (PAAS_SERVICE_CREATE=admins)")
    uid = require_user(ctx, operation)
    assert uid is not None
    return uid


def require_user(ctx: Context, operation: str) -> int | None:
    """The rule under everything that makes a thing of the actor's own (an app, a service, a
    folder): a user of this server (their id), or an admin (root on the host has no id)."""
    if not known(operation):
        raise KeyError(operation)
    uid = actor_id(ctx)
    if is_admin(ctx):
        return uid
    if uid is None or ctx.store.get_user_by_id(uid) is None:
        _denied(ctx, "-", operation)
        raise PermissionDenied(f"only a user of this server may run {operation}")
    return uid


def require_create(ctx: Context) -> int | None:
    """Whether the actor may create an app (apps:create, or pushing a new name); the owner's id."""
    if ctx.settings.app_create == "admins" and not is_admin(ctx):
        _denied(ctx, "-", "create")
        raise PermissionDenied("only an admin may create apps here (PAAS_APP_CREATE=admins)")
    return require_user(ctx, "apps:create")


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


def user_named(ctx: Context, user_name: str) -> User:
    """A user by name (a collaborator to add, an account to change): the one lookup of users."""
    validation.user_name(user_name)
    user = ctx.store.get_user(user_name)
    if user is None:
        raise NotFound(f"no user named {user_name!r}")
    return user


def _audit(ctx: Context, app: App, action: str, detail: str) -> None:
    """Access changes go to the admins' part of the audit log, naming the app in the detail."""
    ctx.store.add_event(None, ctx.actor, action, f"{app.name}: {detail}")


def require_own_access(ctx: Context, app: App, operation: str) -> None:
    """A review app has its parent's owner and collaborators: they are changed on the parent."""
    if app.parent_id is None:
        return
    parent = ctx.store.get_app_by_id(app.parent_id)
    if parent is not None:
        raise PaasError(
            f"{app.name} is a review app of {parent.name} and has its access:"
            f" run {operation} on {parent.name}"
        )


def list_access(ctx: Context, app_name: str) -> dict:
    """The owner and every collaborator with their permissions (also the JSON shape); for a
    review app, its parent's (which decide)."""
    app = access_app(ctx, authorize(ctx, app_name, "access"))
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
    require_own_access(ctx, app, "access:add")
    user = user_named(ctx, user_name)
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
    require_own_access(ctx, app, "access:update")
    user = user_named(ctx, user_name)
    perms = parse_permissions(permissions)
    if ctx.store.grant_of(app.id, user.id) is None:
        raise NotFound(f"{user.name} has no access to {app.name}: use access:add")
    ctx.store.set_grant(app.id, user.id, perms, now())
    _audit(ctx, app, "access:update", f"{user.name} {','.join(perms)}")
    return next(g for g in ctx.store.grants(app.id) if g.user_id == user.id)


def remove_access(ctx: Context, app_name: str, user_name: str) -> None:
    """Takes effect at once: their next command, API request, or open SSH session is refused."""
    app = authorize(ctx, app_name, "access:remove")
    require_own_access(ctx, app, "access:remove")
    user = user_named(ctx, user_name)
    if user.id == app.owner_id:
        raise PaasError(f"{user.name} owns {app.name}: transfer it first (apps:transfer)")
    if not ctx.store.remove_grant(app.id, user.id):
        raise NotFound(f"{user.name} has no access to {app.name}")
    _audit(ctx, app, "access:remove", user.name)
