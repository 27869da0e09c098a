"""Quotas: the ceilings the operator sets for one process, and what each user may hold.

Ceilings (PAAS_MAX_MEMORY, PAAS_MAX_CPUS, PAAS_MAX_PIDS) bound what `resource:limit` may give one
process. Quotas are per user and count what the apps they own hold, whoever makes the change
(a collaborator's `ps:scale` counts against the owner): apps, processes (the formations of their
running apps, summed), the memory limits of those processes, one-off containers at once and disk
(measured by `paas server`, see disk_usage.py). Each operation that could cross one asks here at
its entry, before it changes anything, and is refused in one line naming the quota and its
value. A change that does not add to a count (a restart, a config change) is never refused, so
lowering a quota stops growth without breaking what runs. Admins (and root on the host) are not
held by either: they set them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import docker
from docker.utils import parse_bytes

from paas.core import names, validation
from paas.core.container import Limits
from paas.core.context import Context
from paas.errors import NotFound, PaasError, PermissionDenied, QuotaExceeded
from paas.services import access, limits
from paas.services.locks import app_lock
from paas.store import App, User

# name -> what it counts (the README's table says the same)
QUOTAS: dict[str, str] = {
    "apps": "apps the user owns",
    "processes": "processes of their running apps (the formations, summed)",
    "memory": "memory limits of those processes, summed",
    "oneoffs": "one-off containers (run, run:detached) at once",
    "services": "backing services they own (Postgres, Redis)",
    "disk": "disk their apps use: repos, build caches, images above the stack, containers, logs, storage",
}
SIZES = frozenset({"memory", "disk"})  # given and shown in docker's size syntax (512m, 4g)
DEFAULT = "default"  # `quota:set bob apps=default` drops back to the server's default


def size_text(n: int) -> str:
    """Bytes in the syntax users type: 4g, 512m, 1.5g, 300k."""
    for unit, shift in (("g", 30), ("m", 20), ("k", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{n}b" if n else "0"


def show(name: str, value: int) -> str:
    return size_text(value) if name in SIZES else str(value)


def defaults(ctx: Context) -> dict[str, int]:
    s = ctx.settings
    return {
        "apps": s.quota_apps,
        "processes": s.quota_processes,
        "memory": s.quota_memory,
        "oneoffs": s.quota_oneoffs,
        "services": s.services_per_user,
        "disk": s.quota_disk,
    }


def _counted(ctx: Context, name: str, user_id: int) -> int:
    """What a quota counts that plugins keep (backing services: the datastores'), summed over
    the plugins that answer `paas_quota_held`."""
    held = (call(ctx=ctx, quota=name, user_id=user_id) for _, call in ctx.plugins.each("paas_quota_held"))
    return sum(n for n in held if isinstance(n, int))


def of_user(ctx: Context, user_id: int) -> dict[str, int]:
    """The user's quotas: what an admin set, else the server's defaults."""
    return {**defaults(ctx), **ctx.store.user_quotas(user_id)}


def _held(ctx: Context, owner_id: int | None) -> bool:
    """Whether this change is held by the owner's quotas: admins set them and are not."""
    return owner_id is not None and not access.is_admin(ctx)


def _owner_name(ctx: Context, owner_id: int) -> str:
    user = ctx.store.get_user_by_id(owner_id)
    return user.name if user else f"user {owner_id}"


def _over(ctx: Context, owner_id: int, name: str, detail: str) -> QuotaExceeded:
    limit = of_user(ctx, owner_id)[name]
    owner = _owner_name(ctx, owner_id)
    ctx.store.add_event(None, ctx.actor, "quota:refused", f"{name} of {owner}: {detail}"[:300])
    return QuotaExceeded(f"over the {name} quota of {owner} ({show(name, limit)}): {detail}")


# ceilings
def max_cpus(ctx: Context) -> float:
    return ctx.settings.max_cpus or float(os.cpu_count() or 1)


def require_ceilings(ctx: Context, wanted: Limits) -> None:
    """`resource:limit` values past PAAS_MAX_MEMORY/CPUS/PIDS are for admins only."""
    if access.is_admin(ctx):
        return
    s = ctx.settings
    if wanted.memory is not None and parse_bytes(wanted.memory) > s.max_memory:
        raise QuotaExceeded(
            f"memory {wanted.memory} is over the maximum of {size_text(s.max_memory)} per process"
            " (PAAS_MAX_MEMORY); an admin may set more"
        )
    if wanted.cpus is not None and wanted.cpus > max_cpus(ctx):
        raise QuotaExceeded(
            f"cpu {wanted.cpus:g} is over the maximum of {max_cpus(ctx):g} per process (PAAS_MAX_CPUS);"
            " an admin may set more"
        )
    if wanted.pids is not None and wanted.pids > s.max_pids:
        raise QuotaExceeded(
            f"pids {wanted.pids} is over the maximum of {s.max_pids} per process (PAAS_MAX_PIDS);"
            " an admin may set more"
        )


# processes and memory
@dataclass(frozen=True)
class Load:
    """What one app (or all of a user's) runs: processes, and their memory limits summed."""

    processes: int = 0
    memory: int = 0

    def __add__(self, other: Load) -> Load:
        return Load(self.processes + other.processes, self.memory + other.memory)


def _memory_of(ctx: Context, limit: Limits) -> int:
    """A process without a memory limit may take as much as the ceiling allows: it counts so."""
    return parse_bytes(limit.memory) if limit.memory else ctx.settings.max_memory


def running_formation(ctx: Context, app: App) -> dict[str, int]:
    """The processes the app runs now: its formation, for the types its current build has."""
    if app.stopped:
        return {}
    release = ctx.store.current_release(app.id)
    build = ctx.store.get_build(release.build_id) if release and release.build_id else None
    if build is None:
        return {}
    stored = ctx.store.get_formation(app.id) or release.formation  # type: ignore[union-attr]
    return {t: n for t, n in stored.items() if t in build.processes and t != names.RELEASE_PROCESS}


def app_load(
    ctx: Context,
    app: App,
    formation: dict[str, int] | None = None,
    stored_limits: dict[str, limits.Limits] | None = None,
) -> Load:
    """What the app runs, or would run with this formation and these (stored) limits."""
    if formation is None:
        formation = running_formation(ctx, app)
    if not any(formation.values()):
        return Load()
    base, per_type = limits.effective(ctx, app, stored_limits)
    memory = sum(n * _memory_of(ctx, per_type.get(t, base)) for t, n in formation.items())
    return Load(sum(formation.values()), memory)


def user_load(ctx: Context, owner_id: int) -> Load:
    total = Load()
    for app_id in ctx.store.apps_owned_by(owner_id):
        app = ctx.store.get_app_by_id(app_id)
        if app is not None:
            total += app_load(ctx, app)
    return total


def require_room(
    ctx: Context,
    app: App,
    formation: dict[str, int],
    stored_limits: dict[str, limits.Limits] | None = None,
) -> None:
    """Refuse a change after which the app runs `formation` (with `stored_limits`, when those
    change too) if it takes the owner past their processes or memory quota. A change that adds
    nothing is never refused (a restart when an admin has lowered the quota)."""
    if not _held(ctx, app.owner_id):
        return
    owner: int = app.owner_id  # type: ignore[assignment]
    now = user_load(ctx, owner)
    before = app_load(ctx, app)
    after = Load(now.processes - before.processes, now.memory - before.memory)
    after += app_load(ctx, app, formation, stored_limits)
    quota = of_user(ctx, owner)
    if after.processes > quota["processes"] and after.processes > now.processes:
        raise _over(ctx, owner, "processes", f"this would run {after.processes} (now {now.processes})")
    if after.memory > quota["memory"] and after.memory > now.memory:
        raise _over(
            ctx,
            owner,
            "memory",
            f"this would run processes with {size_text(after.memory)} of memory in all"
            f" (now {size_text(now.memory)})",
        )


# apps
def require_app_slot(ctx: Context, owner_id: int | None) -> None:
    """One more app for this owner (apps:create, a first push, apps:transfer to them)."""
    if not _held(ctx, owner_id):
        return
    owned = len(ctx.store.apps_owned_by(owner_id))  # type: ignore[arg-type]
    if owned + 1 > of_user(ctx, owner_id)["apps"]:  # type: ignore[index]
        raise _over(ctx, owner_id, "apps", f"they own {owned} app(s) already")  # type: ignore[arg-type]


def require_transfer(ctx: Context, app: App, new_owner_id: int) -> None:
    """The receiving user's quotas must hold the app (a tenant cannot fill a neighbour's), with
    its review apps, which go with it."""
    if access.is_admin(ctx):
        return
    family = [app, *(a for r in ctx.store.review_apps_of(app.id) if (a := ctx.store.get_app_by_id(r.app_id)))]
    owned = len(ctx.store.apps_owned_by(new_owner_id))
    if owned + len(family) > of_user(ctx, new_owner_id)["apps"]:
        more = f"; {app.name} brings {len(family)} with its review apps" if len(family) > 1 else ""
        raise _over(ctx, new_owner_id, "apps", f"they own {owned} app(s) already{more}")
    brings = Load()
    for member in family:
        brings += app_load(ctx, member)
    now = user_load(ctx, new_owner_id)
    after = now + brings
    quota = of_user(ctx, new_owner_id)
    if after.processes > quota["processes"] and brings.processes:
        raise _over(ctx, new_owner_id, "processes", f"{app.name} would make it {after.processes}")
    if after.memory > quota["memory"] and brings.memory:
        raise _over(ctx, new_owner_id, "memory", f"{app.name} would make it {size_text(after.memory)}")


# one-offs
def oneoffs_running(ctx: Context, owner_id: int) -> int:
    """`run` and `run:detached` containers of the user's apps that have not ended."""
    owned = {a.name for a in (ctx.store.get_app_by_id(i) for i in ctx.store.apps_owned_by(owner_id)) if a}
    if not owned:
        return 0
    labels = names.label_filter(ctx.settings.instance_id, role=names.ROLE_RUN)
    try:
        found = ctx.docker.api.containers(all=True, filters={"label": labels})
    except docker.errors.DockerException as exc:
        raise PaasError(f"cannot count the one-off containers: {exc}") from None
    return sum(
        1
        for c in found
        if (c.get("Labels") or {}).get(names.LABEL_APP) in owned and c.get("State") in ("created", "running")
    )


@contextmanager
def oneoff_slot(ctx: Context, app: App) -> Iterator[None]:
    """Refuse a one-off past the owner's quota, and hold their count until the caller has made
    its container: sessions started at once cannot all pass the same count."""
    if not _held(ctx, app.owner_id):
        yield
        return
    with app_lock(ctx, f"quota-oneoffs-{app.owner_id}"):  # a lock file per owner, not per app
        require_oneoff(ctx, app)
        yield


def require_oneoff(ctx: Context, app: App) -> None:
    if not _held(ctx, app.owner_id):
        return
    owner: int = app.owner_id  # type: ignore[assignment]
    count = oneoffs_running(ctx, owner)
    if count + 1 > of_user(ctx, owner)["oneoffs"]:
        raise _over(ctx, owner, "oneoffs", f"{count} one-off container(s) run already; wait for one to end")


# disk
def require_service_slot(ctx: Context, owner_id: int | None) -> None:
    """One more backing service of the owner's (a create, an app.json addon) fits the quota."""
    if not _held(ctx, owner_id):
        return
    assert owner_id is not None
    owned = _counted(ctx, "services", owner_id)
    if owned + 1 > of_user(ctx, owner_id)["services"]:
        raise _over(ctx, owner_id, "services", f"they own {owned} backing service(s) already")


def disk_used(ctx: Context, owner_id: int) -> int:
    """What the user's apps used at the last measurement (paas server measures them)."""
    measured = ctx.store.disk_usage(ctx.store.apps_owned_by(owner_id))
    return sum(sum(parts.values()) for parts in measured.values())


def require_disk(ctx: Context, app: App) -> None:
    """A push (a build adds a repo, cache and image) needs the owner under their disk quota."""
    if not _held(ctx, app.owner_id):
        return
    owner: int = app.owner_id  # type: ignore[assignment]
    used = disk_used(ctx, owner)
    if used >= of_user(ctx, owner)["disk"]:
        raise _over(
            ctx, owner, "disk", f"their apps use {size_text(used)}; free some (quota:report shows where)"
        )


# quota:set and quota:report
def parse_assignment(text: str) -> tuple[str, int | None]:
    """`apps=5`, `memory=4g`, `disk=default` -> (name, value or None for the default)."""
    name, sep, raw = text.partition("=")
    if not sep or name not in QUOTAS:
        raise PaasError(f"invalid quota {text!r}: use NAME=VALUE with NAME one of {', '.join(QUOTAS)}")
    raw = raw.strip().lower()
    if raw == DEFAULT:
        return name, None
    if name in SIZES:
        try:
            value = parse_bytes(raw)
        except Exception:  # docker raises its own error type for anything malformed
            value = None
        if not isinstance(value, int) or value < 0 or not raw:
            raise PaasError(f"invalid {name} {raw!r}: use a size like 512m or 4g, or default")
        return name, value
    if not (raw.isascii() and raw.isdigit()) or int(raw) > 100_000:
        raise PaasError(f"invalid {name} {raw!r}: use a whole number from 0 to 100000, or default")
    return name, int(raw)


def _user(ctx: Context, name: str) -> User:
    validation.user_name(name)
    user = ctx.store.get_user(name)
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def set_quotas(ctx: Context, user_name: str, assignments: list[str]) -> dict:
    """`quota:set bob apps=5 memory=4g`: admins only; all or nothing."""
    access.require_admin(ctx, "quota:set")
    user = _user(ctx, user_name)
    if not assignments:
        raise PaasError(f"give one or more NAME=VALUE, e.g. apps=5 memory=4g (names: {', '.join(QUOTAS)})")
    values = dict(parse_assignment(a) for a in assignments)
    ctx.store.set_user_quotas(user.id, values)
    what = " ".join(f"{n}={DEFAULT if v is None else show(n, v)}" for n, v in values.items())
    ctx.store.add_event(None, ctx.actor, "quota:set", f"{user.name} {what}")
    return usage(ctx, user)


def usage(ctx: Context, user: User) -> dict:
    """One user's quotas, usage against them, and the disk of each app (the JSON shape)."""
    quota = of_user(ctx, user.id)
    own = ctx.store.user_quotas(user.id)
    app_ids = ctx.store.apps_owned_by(user.id)
    load = user_load(ctx, user.id)
    measured = ctx.store.disk_usage(app_ids)
    apps = {a.id: a.name for a in (ctx.store.get_app_by_id(i) for i in app_ids) if a}
    used = {
        "apps": len(app_ids),
        "processes": load.processes,
        "memory": load.memory,
        "oneoffs": oneoffs_running(ctx, user.id),
        "services": _counted(ctx, "services", user.id),
        "disk": sum(sum(p.values()) for p in measured.values()),
    }
    return {
        "user": user.name,
        "admin": user.is_admin,
        "quotas": {
            name: {"limit": quota[name], "used": used[name], "default": name not in own} for name in QUOTAS
        },
        "disk": {apps[i]: parts for i, parts in sorted(measured.items()) if i in apps},
    }


def report(ctx: Context, user_name: str | None = None) -> list[dict]:
    """Your own quotas and usage; an admin may name anyone, and root on the host sees everyone."""
    if user_name is None:
        if ctx.on_host:
            return [usage(ctx, u) for u in ctx.store.list_users()]
        uid = access.actor_id(ctx)
        user = ctx.store.get_user_by_id(uid) if uid is not None else None
        if user is None:
            return []  # nobody signed in: nobody's quotas
        return [usage(ctx, user)]
    user = _user(ctx, user_name)
    if not access.is_admin(ctx) and user.id != access.actor_id(ctx):
        raise PermissionDenied("only an admin may see another user's quotas")
    return [usage(ctx, user)]
