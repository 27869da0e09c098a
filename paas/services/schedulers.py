"""Which scheduler runs an app: docker-local, or one a plugin provides (`paas_schedulers`: the
built-in plugins/swarm is one). The core names no other scheduler and branches on none: what
differs is behind `paas.scheduler.interface.Scheduler`.

New apps get PAAS_SCHEDULER; `scheduler:set <app> swarm|docker-local` moves one (moves.py).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from contextlib import ExitStack, contextmanager

from paas.core import names
from paas.core.context import Context
from paas.errors import PaasError
from paas.scheduler.docker_local import DockerLocal
from paas.scheduler.interface import Scheduler
from paas.services import locks, properties
from paas.store import App


def stop_timeout(ctx: Context, app: App) -> int:
    """Seconds between SIGTERM and SIGKILL for the app's processes (ps:set stop-timeout-seconds)."""
    return int(properties.value(ctx, app, "ps", "stop-timeout-seconds"))


def _seconds(ctx: Context, value: str) -> str:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 3600:
        raise PaasError("stop-timeout-seconds must be a whole number of seconds from 1 to 3600")
    return str(int(value))


def _ps_info(ctx: Context, app: App) -> dict[str, str]:
    """What ps:report shows beside the properties: each process's state (Dokku's keys)."""
    rows = for_app(ctx, app).rows(app.name)
    states = {r.state for r in rows}
    info = {
        "deployed": "true" if ctx.store.current_release(app.id) else "false",
        "processes": str(len(rows)),
        "running": "true" if states == {"running"} else ("mixed" if "running" in states else "false"),
    }
    for r in sorted(rows, key=lambda r: (r.type, r.index)):
        info[f"status-{r.type}-{r.index}"] = f"{r.state} (CID: {r.id})"
    return info


def by_name(ctx: Context, name: str, app: App | None = None) -> Scheduler:
    """The scheduler called `name` (for `app`: a plugin's may fix per-app settings, such as the
    stop timeout of a swarm service, when it starts one); names other than docker-local come from
    plugins (`paas_schedulers`)."""
    if name == names.SCHEDULER_LOCAL:
        return DockerLocal(ctx.docker, ctx.settings.instance_id, ctx.settings.local_ports)
    factory = ctx.plugins.schedulers().get(name)
    if factory is None:
        raise PaasError(f"unknown scheduler {name!r}: use one of {', '.join(known(ctx))}")
    return factory(ctx, app)


def for_app(ctx: Context, app: App) -> Scheduler:
    """The scheduler that runs `app` now."""
    return by_name(ctx, app.scheduler or names.SCHEDULER_LOCAL, app)


def known(ctx: Context) -> list[str]:
    """docker-local, then the plugins' schedulers."""
    return [names.SCHEDULER_LOCAL, *sorted(set(ctx.plugins.schedulers()) - {names.SCHEDULER_LOCAL})]


def validate(ctx: Context, name: str) -> str:
    name = (name or "").strip().lower()
    if name not in known(ctx):
        raise PaasError(f"unknown scheduler {name!r}: use one of {', '.join(known(ctx))}")
    return name


def require_ready(ctx: Context, name: str) -> None:
    """Whatever the scheduler needs on this host before an app moves onto it (`prepare`: swarm
    initialises the swarm on first ask)."""
    by_name(ctx, name).prepare()


properties.register(
    properties.Namespace(
        "ps",
        props=(
            properties.Prop(
                "stop-timeout-seconds",
                default=lambda ctx: str(ctx.settings.stop_timeout),
                check=_seconds,
                setting="stop_timeout",
            ),
        ),
        info=_ps_info,
    )
)


@contextmanager
def surveyed(ctx: Context, apps: Iterable[App]) -> Iterator[None]:
    """A pass over many apps (reconcile): each scheduler they use that can list what it runs
    once for all of them (an optional `survey()` context) does so for the pass's length."""
    with ExitStack() as stack:
        for name in sorted({a.scheduler or names.SCHEDULER_LOCAL for a in apps} | {names.SCHEDULER_LOCAL}):
            try:
                scheduler = by_name(ctx, name)
            except PaasError:
                continue
            survey = getattr(scheduler, "survey", None)
            if survey is not None:  # an app whose lock was released since the listing: listed again
                stack.enter_context(survey(lambda app, since: locks.released_since(ctx, app, since)))
        yield


def fingerprint(ctx: Context, app: App) -> Hashable | None:
    """What the app's scheduler saw of its processes in the pass's survey (its optional
    `fingerprint(app)`): equal in two passes only when nothing happened to them in between;
    None when it cannot tell (no survey: the swarm's): the pass visits the app."""
    found = getattr(for_app(ctx, app), "fingerprint", None)
    return found(app.name) if found is not None else None
