"""App logs, Heroku-style (`<timestamp> app[web.1]: <line>`), merged across containers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import docker
from docker.models.containers import Container

from paas.core import names, validation
from paas.core.context import Context
from paas.core.output import split_lines
from paas.errors import NotFound, PaasError, PermissionDenied
from paas.scheduler import host_containers as sched
from paas.services import access, schedulers
from paas.services.releases import get_release, parse_version

MAX_LINES = 10000
SINCE_MARGIN = 2.0  # seconds before the last lines are read that a follow starts from (clock skew)


def _heroku_time(docker_ts: str) -> str:
    """2026-11-28T02:30:01.123456789Z -> 2026-11-28T02:30:01.123456+00:00."""
    main, _, frac = docker_ts.rstrip("Z").partition(".")
    return f"{main}.{(frac or '0')[:6]:0<6}+00:00"


def _line(ts: str, dyno: str, text: str) -> str:
    """One line as Heroku prints it: its time, the dyno that wrote it, the text."""
    return f"{_heroku_time(ts)} app[{dyno}]: {text}"


def _format(container: Container, lines: Iterable[str]) -> list[tuple[str, str]]:
    """(sort key, formatted line) for each `timestamps=True` line docker gave."""
    dyno = f"{container.labels.get(names.LABEL_TYPE, '?')}.{container.labels.get(names.LABEL_INDEX, '0')}"
    out = []
    for line in lines:
        ts, _, text = line.partition(" ")
        if not ts:
            continue
        out.append((ts, _line(ts, dyno, text.rstrip("\r"))))
    return out


def _containers(ctx: Context, app: str, ptype: str | None) -> list[Container]:
    """Process containers, plus cron runs (type `cron`, kept after they exit until that job's
    next run by the cron plugin), so `-p cron` shows the jobs' output."""
    found = sched.app_containers(ctx.docker, ctx.settings.instance_id, app)
    cron = names.label_filter(ctx.settings.instance_id, app, names.ROLE_CRON)
    found += ctx.docker.containers.list(all=True, ignore_removed=True, filters={"label": cron})
    return [c for c in found if ptype is None or c.labels.get(names.LABEL_TYPE) == ptype]


def check(ctx: Context, app_name: str, lines: int, ptype: str | None) -> str:
    """The app's name, if the actor may read its logs and the arguments are good (a stream asks
    before it starts, so a refusal is a page or JSON, not a line inside the stream)."""
    app = access.authorize(ctx, app_name, "logs")
    if not 1 <= lines <= MAX_LINES:
        raise PaasError(f"-n must be between 1 and {MAX_LINES}")
    if ptype is not None:
        validation.process_type(ptype)
    return app.name


def recent(ctx: Context, app_name: str, lines: int = 100, ptype: str | None = None) -> list[str]:
    return [line for _, line in _recent(ctx, app_name, lines, ptype)]


def _recent(ctx: Context, app_name: str, lines: int, ptype: str | None) -> list[tuple[str, str]]:
    """The last `lines` as (docker timestamp, formatted line), oldest first."""
    app = check(ctx, app_name, lines, ptype)
    merged: list[tuple[str, str]] = []
    record = ctx.store.get_app(app)
    if record is not None:  # lines this host's engine does not hold (every swarm node's)
        for source in schedulers.for_app(ctx, record).log_sources(app, ptype):
            for ts, dyno, text in source.lines(lines):
                merged.append((ts, _line(ts, dyno, text)))
    for c in _containers(ctx, app, ptype):
        try:
            # Streamed and split with bounded lines: an app may print gigabytes without a newline.
            stream = c.logs(stream=True, follow=False, timestamps=True, tail=lines)
            merged.extend(_format(c, split_lines(stream)))
        except docker.errors.NotFound:
            continue
    merged.sort(key=lambda x: x[0])  # docker's timestamps are fixed-width: text order is time order
    return merged[-lines:]


def follow(
    ctx: Context,
    app_name: str,
    emit: Callable[[str], None],
    stopped: Callable[[], bool],
    lines: int = 100,
    ptype: str | None = None,
) -> None:
    """Print the last `lines`, then every new line until `stopped()`; follows new containers
    (and a swarm app's new services: a deploy starts a service per process type) too.
    Ends when the actor loses access to the app (a dashboard stream as an SSH session).

    A line written while the last lines are read, or before a container's stream is open (a
    thread of its own, later under load), is not lost: the containers found first are followed
    from a moment before the last lines were read, and what those already showed is skipped."""
    since = time.time() - SINCE_MARGIN
    shown = _recent(ctx, app_name, lines, ptype)
    for _, line in shown:
        emit(line)
    oldest_shown = shown[0][0] if shown else ""
    seen = {line for _, line in shown}
    app = app_name
    record = ctx.store.get_app(app)
    scheduler = schedulers.for_app(ctx, record) if record else None
    lock = threading.Lock()  # one line at a time
    guard = threading.Lock()  # `streams`, apart from `lock`: an emit may block on a slow reader
    streams: dict[str, Any] = {}  # container or service id -> what to close when follow ends
    sources: set[str] = set()  # the scheduler's log sources among them
    ended = threading.Event()  # a stream opened after this closes itself
    failed = threading.Event()

    def keep(key: str, stream: Any) -> bool:
        with guard:
            if not ended.is_set():
                streams[key] = stream
                return True
        _close(stream)
        return False

    def pump(container: Container, initial: bool) -> None:
        try:
            if initial:
                stream = container.logs(stream=True, follow=True, timestamps=True, since=since)
            else:  # started since: all it printed
                stream = container.logs(stream=True, follow=True, timestamps=True, tail="all")
            if not keep(container.id, stream):
                return
            for raw in split_lines(stream):
                for ts, line in _format(container, [raw]):
                    if initial and (ts < oldest_shown or line in seen):
                        continue  # shown with the last lines (or older than them)
                    with lock:
                        emit(line)
        except OSError:
            failed.set()
        except docker.errors.DockerException:
            pass

    def pump_service(stream: Iterable[tuple[str, str, str]]) -> None:
        try:
            for ts, dyno, text in stream:
                with lock:
                    emit(_line(ts, dyno, text))
        except OSError:
            failed.set()

    def watch(initial: bool) -> None:
        tail = 0 if initial else "all"  # what a process started since printed, all of it
        for c in _containers(ctx, app, ptype):
            if c.id not in streams and keep(c.id, None):
                threading.Thread(target=pump, args=(c, initial), daemon=True).start()
        if scheduler is None:
            return
        now = {s.id: s for s in scheduler.log_sources(app, ptype)}
        for gone in sources - set(now):  # removed (a deploy's old release): its stream never ends
            sources.discard(gone)
            with guard:
                stream = streams.pop(gone, None)
            _close(stream)
        for sid, source in now.items():
            if sid not in streams:
                stream = source.follow(tail)
                if keep(sid, stream):
                    sources.add(sid)
                    threading.Thread(target=pump_service, args=(stream,), daemon=True).start()

    try:
        watch(initial=True)
        ticks = 0
        while not stopped() and not failed.is_set():
            threading.Event().wait(0.25)
            ticks += 1
            if ticks % 4 == 0:
                if record is not None and ctx.store.get_app_by_id(record.id) is None:
                    return  # destroyed: nothing more will come
                if not access.still_allowed(ctx):  # the dashboard's stream ends here too
                    raise PermissionDenied("session ended: access to the app was removed")
                watch(initial=False)
    finally:
        with guard:
            ended.set()
            left = list(streams.values())
        for s in left:
            _close(s)


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - best effort on teardown
            pass


def build_output(ctx: Context, app_name: str, version_text: str | None) -> str:
    """The kept output of the build behind a release (default: the latest build)."""
    app = access.authorize(ctx, app_name, "builds:output")
    if version_text is None:
        build = ctx.store.latest_build(app.id)
        if build is None:
            raise NotFound(f"{app.name} has no builds yet")
        return _kept(ctx, build.output)
    release = get_release(ctx, app, parse_version(version_text))
    build = ctx.store.build_of(release)
    if build is None:
        raise NotFound(f"v{release.version} of {app.name} has no build")
    return _kept(ctx, build.output)


def _kept(ctx: Context, output: str) -> str:
    if output:
        return output
    n = ctx.settings.keep_build_outputs
    raise NotFound(
        f"the output of this build is no longer kept (the last {n} builds' are: PAAS_KEEP_BUILD_OUTPUTS)"
    )
