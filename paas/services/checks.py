"""Health checks before traffic moves: which ones run (defaults, app.json `healthchecks`,
checks:disable/enable); paas.scheduler.health probes the containers.

Default for web: the process answers HTTP on $PORT within the boot timeout; for every type: still
running after the settle period. app.json may add startup checks per process type in Dokku's
format: {"healthchecks": {"web": [{"type": "startup", "path": "/health", "content": "ok",
"timeout": 5, "attempts": 3, "wait": 1, "initialDelay": 0, "uptime": 0}]}}.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from paas.core import manifest, timing, validation
from paas.core.context import Context
from paas.core.manifest import StartupCheck
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.scheduler import health
from paas.scheduler.interface import Probe
from paas.services import access, lookup, properties, schedulers
from paas.store import App, Build

logger = logging.getLogger("paas.deploy")
DISABLED_SETTING = "checks_disabled"
SKIPPED_SETTING = "checks_skipped"
ALL = "_all_"


def checks_for(build: Build) -> dict[str, list[StartupCheck]]:
    """The app.json startup checks of the commit a build was made from (kept with the build)."""
    return manifest.from_data(build.manifest).healthchecks if build.manifest else {}


def _types(ctx: Context, app: App, setting: str) -> list[str]:
    raw = ctx.store.get_setting(app.id, setting) or ""
    return [t for t in raw.split(",") if t]


def disabled_types(ctx: Context, app: App) -> set[str]:
    """Types whose checks do not run: skipped ones, and disabled ones (which also give up zero
    downtime: their old processes stop before the new ones start)."""
    return set(_types(ctx, app, DISABLED_SETTING)) | set(_types(ctx, app, SKIPPED_SETTING))


def downtime_types(ctx: Context, app: App) -> set[str]:
    """checks:disable's types: no zero-downtime deploy for them."""
    return set(_types(ctx, app, DISABLED_SETTING))


def is_disabled(disabled: set[str], ptype: str) -> bool:
    return ALL in disabled or ptype in disabled


def split_types(ptypes: list[str]) -> list[str]:
    """`web,worker` and `web worker` alike, each a valid process type, in the order given."""
    out: list[str] = []
    for word in ptypes:
        for t in word.split(","):
            if t and t not in out:
                out.append(validation.process_type(t))
    return out


def set_checks(ctx: Context, app_name: str, ptypes: list[str], state: str) -> tuple[list[str], list[str]]:
    """checks:enable / checks:disable / checks:skip for some process types or (none given) all.

    A type is in at most one list: disabling it takes it off the skipped list and the other way
    round; enabling takes it off both. Returns (disabled, skipped), in the order they were given."""
    operation = {"enabled": "checks:enable", "disabled": "checks:disable", "skipped": "checks:skip"}[state]
    app = access.authorize(ctx, app_name, operation)
    targets = split_types(ptypes) or [ALL]
    lists = {
        DISABLED_SETTING: _types(ctx, app, DISABLED_SETTING),
        SKIPPED_SETTING: _types(ctx, app, SKIPPED_SETTING),
    }
    own = {"disabled": DISABLED_SETTING, "skipped": SKIPPED_SETTING}.get(state)
    for setting, current in lists.items():
        if targets == [ALL]:
            current[:] = [ALL] if setting == own else []
        elif setting == own:
            current[:] = [t for t in current if t != ALL] + [t for t in targets if t not in current]
        else:
            current[:] = [t for t in current if t not in targets]
    for setting, current in lists.items():
        ctx.store.set_setting(app.id, setting, ",".join(current) or None)
    ctx.store.add_event(app.name, ctx.actor, operation, " ".join(targets))
    return lists[DISABLED_SETTING], lists[SKIPPED_SETTING]


def _listed(types: list[str]) -> str:
    return ",".join(types) or "none"


def _info(ctx: Context, app: App) -> dict[str, str]:
    """What checks:report shows beside the properties (Dokku's keys)."""
    return {
        "disabled-list": _listed(_types(ctx, app, DISABLED_SETTING)),
        "skipped-list": _listed(_types(ctx, app, SKIPPED_SETTING)),
    }


WAIT_TO_RETIRE_DEFAULT = "60"  # Dokku's


def _retire_seconds(ctx: Context, value: str) -> str:
    if not (value.isascii() and value.isdigit()) or not 0 <= int(value) <= 86400:
        raise PaasError("wait-to-retire must be a whole number of seconds from 0 to 86400")
    return str(int(value))


# Dokku's `wait-to-retire` (how long old containers live on after a deploy) is kept and reported
# for scripts written for Dokku; nothing reads it: here an old process gets SIGTERM as soon as
# nginx has moved its requests to the new ones (a reload lets requests in flight finish), and
# `ps:set <app> stop-timeout-seconds` bounds how long it has to finish them.
properties.register(
    properties.Namespace(
        "checks",
        props=(properties.Prop("wait-to-retire", default=WAIT_TO_RETIRE_DEFAULT, check=_retire_seconds),),
        info=_info,
    )
)


def report(ctx: Context, app_name: str) -> dict:
    """Which checks run for each process type (the `report` command's JSON)."""
    app = access.authorize(ctx, app_name, "checks:report")
    disabled = disabled_types(ctx, app)
    release = ctx.store.current_release(app.id)
    build = ctx.store.build_of(release)
    custom = checks_for(build) if build else {}
    types = sorted(set(build.processes if build else {}) | set(custom))
    return {
        "disabled": _types(ctx, app, DISABLED_SETTING),
        "skipped": _types(ctx, app, SKIPPED_SETTING),
        "types": {
            t: {
                "enabled": not is_disabled(disabled, t),
                "default": "answers HTTP on $PORT, then stays up" if t == "web" else "stays up",
                "custom": [c.name for c in custom.get(t, [])],
            }
            for t in types
        },
    }


def run_now(ctx: Context, app_name: str, targets: list[str], log: BuildLog) -> int:
    """`checks:run <app> [web,worker|worker.1]`: the checks a deploy runs, now, against the
    running processes (all, some types, or one `type.index`). A target that matches no running
    process is an error. Returns how many processes were checked."""
    app = access.authorize(ctx, app_name, "checks:run")
    release = ctx.store.current_release(app.id)
    build = ctx.store.get_build(release.build_id) if release and release.build_id else None
    if build is None or app.stopped:
        raise PaasError(f"{app.name} has no running processes to check")
    scheduler = schedulers.for_app(ctx, app)
    probes = scheduler.probes(scheduler.processes(app.name))
    wanted = [w for word in targets for w in word.split(",") if w]
    chosen = []
    for target in wanted:
        ptype, _, index = target.partition(".")
        validation.process_type(ptype)
        if index and not index.isdigit():
            raise PaasError(f"invalid process {target!r}: use a type (web) or type.index (web.1)")
        found = [p for p in probes if p.type == ptype and (not index or p.index == int(index))]
        if not found:
            raise PaasError(f"no running process {target} in {app.name}")
        chosen += [p for p in found if p not in chosen]
    host = lookup.hostnames(ctx, app.name)[0]
    custom = checks_for(build)
    for p in chosen or probes:
        log.step(f"Running checks for {p.dyno}")
        p.refresh()
        problem = p.crashed()
        if problem:
            raise PaasError(f"{p.dyno} failed its checks: {problem}")
        if p.type == "web":
            health.wait_until_serving(p, ctx.settings.boot_timeout, host)
            for check in custom.get(p.type, []):
                log.detail(f"checking {p.dyno}: {check.name}")
                health.run_startup_check(p, check, host)
    return len(chosen or probes)


def run_checks(
    ctx: Context,
    app: App,
    build: Build,
    started: list[Probe],
    log: BuildLog,
    meanwhile: Callable[[], None] | None = None,
    before_settle: Callable[[], None] | None = None,
) -> None:
    """Default and app.json checks for each new container (unless disabled), then the settle.

    `meanwhile` runs in a thread alongside (the router's check of the next route): the checks
    mostly wait, and nothing it does decides whether they pass. Its errors are only logged:
    what it prepares is done again if needed. `before_settle` runs once the checks passed (and
    `meanwhile` ended), inside the settle period: the settle counts from the start, so its time
    is not added."""
    worker = threading.Thread(target=_quietly, args=(meanwhile,), daemon=True) if meanwhile else None
    if worker is not None:
        worker.start()
    try:
        checked = _run_checks(ctx, app, build, started, log)
    finally:
        if worker is not None:
            worker.join()
    if before_settle is not None:
        before_settle()
    with timing.phase(app.name, "deploy.settle"):
        health.settle(checked, ctx.settings.settle_seconds)


def _quietly(work: Callable[[], None]) -> None:
    try:
        work()
    except Exception:
        logger.exception("preparing the route alongside the checks failed (it is done again)")


def _run_checks(ctx: Context, app: App, build: Build, started: list[Probe], log: BuildLog) -> list[Probe]:
    """The checks; the processes the settle period then covers."""
    custom = checks_for(build)
    disabled = disabled_types(ctx, app)
    host = lookup.hostnames(ctx, app.name)[0]
    checked = []
    checking = time.time()
    for p in started:
        if is_disabled(disabled, p.type):
            continue
        checked.append(p)
        if p.type == "web":
            health.wait_until_serving(p, ctx.settings.boot_timeout, host)
            for check in custom.get(p.type, []):
                log.detail(f"checking {p.dyno}: {check.name}")
                health.run_startup_check(p, check, host)
    if disabled:
        log.detail("checks disabled for " + ", ".join(sorted("all" if d == ALL else d for d in disabled)))
    timing.mark(app.name, "deploy.checks", checking)
    return checked
