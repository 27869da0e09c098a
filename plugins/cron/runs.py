"""Cron runs on dockerd: a one-off container of the app's current release per run.

Same container settings as every other container of the release (`container_settings`: the
release's config, then what plugins add through `paas_pre_deploy`; `engine_kwargs` turns them
into Engine API arguments), and the same launch as app.json's postdeploy: the image's entrypoint
(`/start`, which sources .profile.d) with `/bin/sh -c <command>`.

Why not `release_phase.run_oneoff`: its containers carry the role `oneoff`, which reconcile
removes whenever no deploy holds the app's lock (a cron run holds no lock: it must not block
deploys), and it removes the container at the end. Cron containers carry their own role
(`names.ROLE_CRON`) and are kept after they exit until that job's next run starts: `logs <app>
-p cron` reads them (type `cron`, index = the job id), and `cron:list` reads the last run's times
and exit status from them. So output history is one run per job, bounded by docker's log options.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import docker
import requests
from docker.models.containers import Container

from paas.buildpacks.builder import stream_lines
from paas.core import names
from paas.core.container import log_config
from paas.plugin_api import App, Conflict, Context, PaasError
from paas.scheduler import host_containers as sched
from paas.services.containers import container_settings

from .jobs import Job

CRON_TYPE = "cron"
RUNNING = ("running", "restarting")
MAX_RUN_SECONDS = 24 * 3600  # a run still going after a day is killed (its schedule resumes)
WAIT_STEP = 30  # seconds per Engine API wait call (the client's own read timeout is 60)
LOG_OPTIONS = log_config({"max-size": "1m", "max-file": "2"})  # smaller: kept until the next run
_job_locks: dict[tuple[int, str], threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class LastRun:
    started_at: str | None
    finished_at: str | None
    status: int | None  # None while running
    release: str


def _job_lock(app: App, job: Job) -> threading.Lock:
    with _locks_guard:
        return _job_locks.setdefault((app.id, job.id), threading.Lock())


def containers(ctx: Context, app_name: str | None = None, job_id: str | None = None) -> list[Container]:
    labels = names.label_filter(ctx.settings.instance_id, app_name, names.ROLE_CRON)
    if job_id is not None:
        labels.append(f"{names.LABEL_INDEX}={job_id}")
    return ctx.docker.containers.list(all=True, ignore_removed=True, filters={"label": labels})


def is_running(ctx: Context, app: App, job: Job) -> bool:
    """A run of this job is going on dockerd (started by any process, or a previous server)."""
    return any(c.status in RUNNING for c in containers(ctx, app.name, job.id))


def last_run(ctx: Context, app_name: str, job_id: str) -> LastRun | None:
    found = containers(ctx, app_name, job_id)
    if not found:
        return None
    c = max(found, key=lambda c: c.attrs.get("Created", ""))
    state = c.attrs.get("State", {})
    running = c.status in RUNNING
    started = state.get("StartedAt") or ""
    finished = state.get("FinishedAt") or ""
    return LastRun(
        started_at=None if started.startswith("0001-") else started[:19] + "Z",
        finished_at=None if running or finished.startswith("0001-") else finished[:19] + "Z",
        status=None if running else int(state.get("ExitCode", 1)),
        release=c.labels.get(names.LABEL_RELEASE, "?"),
    )


class _Sink:
    def __init__(self, emit: Callable[[str], None]) -> None:
        self.line = emit


def run_job(
    ctx: Context, app: App, job: Job, emit: Callable[[str], None] | None = None, actor: str = "paas"
) -> int:
    """Run the job now in the current release and wait for it; returns its exit status.

    `emit` gets its output line by line (cron:run). A non-zero exit is recorded as an event."""
    release = ctx.store.current_release(app.id)
    build = ctx.store.build_of(release)
    if release is None or build is None or not build.image:
        raise PaasError(f"{app.name} has not been deployed yet")
    try:
        with _job_lock(app, job):
            if is_running(ctx, app, job):
                raise Conflict(f"cron job {job.id} of {app.name} is still running")
            # The previous run's container held its output until now.
            sched.stop_and_remove(containers(ctx, app.name, job.id), timeout=1)
            settings = container_settings(ctx, app, release)
            dyno = f"{CRON_TYPE}.{job.id}"
            labels = names.app_labels(
                ctx.settings.instance_id,
                app.name,
                names.ROLE_CRON,
                **{
                    names.LABEL_RELEASE: str(release.version),
                    names.LABEL_TYPE: CRON_TYPE,
                    names.LABEL_INDEX: job.id,
                },
            )
            container = ctx.docker.containers.create(
                build.image,
                command=["/bin/sh", "-c", job.command],
                name=f"paas-{app.name}-cron-{job.id}-v{release.version}-{uuid.uuid4().hex[:6]}",
                **{
                    **sched.engine_kwargs(
                        ctx.docker, build.image, settings, labels, {"DYNO": dyno, "PS": dyno}, CRON_TYPE
                    ),
                    "log_config": LOG_OPTIONS,
                },
            )
            container.start()
    except docker.errors.DockerException as exc:
        raise PaasError(f"cron job {job.id} could not start: {exc.__class__.__name__}") from None
    streamer = None
    if emit is not None:
        streamer = threading.Thread(target=stream_lines, args=(container, _Sink(emit)), daemon=True)
        streamer.start()
    status = _wait(container)
    if streamer is not None:
        streamer.join(timeout=5)
    if status != 0:
        ctx.store.add_event(app.name, actor, "cron:failed", f"{job.id} exited with status {status}")
    return status


def _wait(container: Container) -> int:
    """The exit status, waiting in steps (one long Engine API call would hit the read timeout)."""
    deadline = time.monotonic() + MAX_RUN_SECONDS
    while time.monotonic() < deadline:
        try:
            return int(container.wait(timeout=WAIT_STEP).get("StatusCode", 1))
        except requests.exceptions.RequestException:
            time.sleep(1)  # a read timeout took WAIT_STEP already; a refused connection took nothing
        except docker.errors.NotFound:
            return 137  # removed under us (app destroyed)
    try:
        container.kill()
    except docker.errors.DockerException:
        pass
    return 137


def remove_stale(ctx: Context, keep: set[tuple[str, str]]) -> int:
    """Remove finished cron containers whose (app, job id) is no longer a job (app.json changed,
    app renamed or destroyed); running ones finish first."""
    removed = 0
    for c in containers(ctx):
        key = (c.labels.get(names.LABEL_APP, ""), c.labels.get(names.LABEL_INDEX, ""))
        if key not in keep and c.status in ("exited", "dead"):
            sched.stop_and_remove([c], timeout=1)
            removed += 1
    return removed
