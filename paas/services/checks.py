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
from paas.scheduler import health
from paas.scheduler.interface import Probe
from paas.services import access, lookup
from paas.store import App, Build

logger = logging.getLogger("paas.deploy")
DISABLED_SETTING = "checks_disabled"
ALL = "_all_"


def checks_for(build: Build) -> dict[str, list[StartupCheck]]:
    """The app.json startup checks of the commit a build was made from (kept with the build)."""
    return manifest.from_data(build.manifest).healthchecks if build.manifest else {}


def disabled_types(ctx: Context, app: App) -> set[str]:
    raw = ctx.store.get_setting(app.id, DISABLED_SETTING) or ""
    return {t for t in raw.split(",") if t}


def is_disabled(disabled: set[str], ptype: str) -> bool:
    return ALL in disabled or ptype in disabled


def set_checks(ctx: Context, app_name: str, ptypes: list[str], enabled: bool) -> set[str]:
    """checks:enable / checks:disable, for some process types or (none given) all of them."""
    app = access.authorize(ctx, app_name, "checks:enable" if enabled else "checks:disable")
    for t in ptypes:
        validation.process_type(t)
    disabled = disabled_types(ctx, app)
    targets = set(ptypes) or {ALL}
    if enabled:
        disabled = set() if not ptypes else disabled - targets
    else:
        disabled |= targets
    ctx.store.set_setting(app.id, DISABLED_SETTING, ",".join(sorted(disabled)) or None)
    action = "checks:enable" if enabled else "checks:disable"
    ctx.store.add_event(app.name, ctx.actor, action, " ".join(ptypes) or "all")
    return disabled


def report(ctx: Context, app_name: str) -> dict:
    app = access.authorize(ctx, app_name, "checks:report")
    disabled = disabled_types(ctx, app)
    release = ctx.store.current_release(app.id)
    build = ctx.store.build_of(release)
    custom = checks_for(build) if build else {}
    types = sorted(set(build.processes if build else {}) | set(custom))
    return {
        "disabled": sorted("all" if t == ALL else t for t in disabled),
        "types": {
            t: {
                "enabled": not is_disabled(disabled, t),
                "default": "answers HTTP on $PORT, then stays up" if t == "web" else "stays up",
                "custom": [c.name for c in custom.get(t, [])],
            }
            for t in types
        },
    }


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
