"""One-off containers from a release's image: the Procfile's `release:` command and app.json's
`postdeploy` script.

The release command runs once per new release, before any of its processes start, so migrations
happen before the new code serves; a non-zero exit fails the release and what ran keeps running.
"""

from __future__ import annotations

import threading
import uuid

import docker
import requests

from paas.buildpacks.builder import stream_lines
from paas.core import names
from paas.core.container import ContainerSettings
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.scheduler import host_containers as sched
from paas.services.containers import container_settings
from paas.store import App, Release

TIMEOUT_SECONDS = 30 * 60


class ReleasePhaseFailed(PaasError):
    """The release command (or postdeploy script) exited non-zero or did not finish."""


class PostdeployFailed(PaasError):
    """A postdeploy task failed after its release went live: the release stays, the branch moves
    to the deployed commit, and the push (or command) still ends with a failure, as Dokku's does,
    so a script or CI job sees it. `release`: the live release (None from a task itself)."""

    def __init__(self, message: str, release: Release | None = None) -> None:
        super().__init__(message)
        self.release = release


class _IndentedLog:
    """The command's own output, as detail lines of the build log."""

    def __init__(self, log: BuildLog) -> None:
        self._log = log

    def line(self, text: str) -> None:
        self._log.detail(text)


def run_oneoff(
    ctx: Context,
    app: App,
    release: Release,
    image: str,
    command: list[str],
    dyno: str,
    log: BuildLog | _IndentedLog,
    timeout: int = TIMEOUT_SECONDS,
    settings: ContainerSettings | None = None,
) -> int:
    """Run a command to completion in a fresh container from `image`; return its exit status.

    `log` gets the command's output line by line (as build-log details unless given raw)."""
    client = ctx.docker
    if settings is None:
        settings = container_settings(ctx, app, release)
    labels = names.app_labels(
        ctx.settings.instance_id,
        app.name,
        names.ROLE_ONEOFF,
        **{names.LABEL_RELEASE: str(release.version), names.LABEL_TYPE: dyno.split(".")[0]},
    )
    container = client.containers.create(
        image,
        command=command,
        name=f"paas-{app.name}-{dyno.replace('.', '-')}-v{release.version}-{uuid.uuid4().hex[:6]}",
        **sched.engine_kwargs(
            client, image, settings, labels, {"DYNO": dyno, "PS": dyno}, dyno.split(".")[0]
        ),
    )
    sink = log if isinstance(log, _IndentedLog) else _IndentedLog(log)
    try:
        container.start()
        # The output streams from a thread so that the wait below can time out.
        streamer = threading.Thread(target=stream_lines, args=(container, sink), daemon=True)
        streamer.start()
        try:
            status = int(container.wait(timeout=timeout).get("StatusCode", 1))
        except (requests.exceptions.RequestException, docker.errors.DockerException):
            container.kill()
            raise ReleasePhaseFailed(f"{dyno} did not finish within {timeout} seconds") from None
        streamer.join(timeout=5)
        return status
    finally:
        try:
            container.remove(force=True)
        except docker.errors.DockerException:
            pass


def run_release_command(
    ctx: Context, app: App, release: Release, image: str, processes: dict[str, str], log: BuildLog
) -> None:
    """The `release:` process, if the build has one; raises when it fails."""
    command = processes.get(names.RELEASE_PROCESS)
    if not command:
        return
    log.step(f"Running release command: {command}")
    status = run_oneoff(ctx, app, release, image, [names.RELEASE_PROCESS], "release.1", log)
    if status != 0:
        raise ReleasePhaseFailed(  # Dokku's first words: scripts match them
            f"Execution of release task failed: release command failed (exit status {status}): "
            f"v{release.version} was not deployed"
        )
    log.detail("release command done")


def run_predeploy(ctx: Context, app: App, release: Release, image: str, command: str, log: BuildLog) -> None:
    """app.json's `scripts.dokku.predeploy`: before any process of the new build starts; a failure
    fails the release (like `release:`). Unlike Dokku, what it changes is not kept in the image."""
    log.step(f"Running predeploy: {command}")
    status = run_oneoff(ctx, app, release, image, ["/bin/sh", "-c", command], "predeploy.1", log)
    if status != 0:
        raise ReleasePhaseFailed(
            f"Execution of predeploy task failed (exit status {status}): v{release.version} was not deployed"
        )
    log.detail("predeploy done")


def run_postdeploy(
    ctx: Context, app: App, release: Release, image: str, command: str, log: BuildLog, first: bool = False
) -> None:
    """app.json's `scripts.postdeploy` (after the first deploy: `first`) or `scripts.dokku.postdeploy`
    (after every deploy of a new build); a failure raises PostdeployFailed, nothing is undone."""
    log.step(f"Running postdeploy: {command}")
    status = run_oneoff(ctx, app, release, image, ["/bin/sh", "-c", command], "postdeploy.1", log)
    if status != 0:
        task = "first deploy postdeploy" if first else "postdeploy"
        raise PostdeployFailed(  # Dokku's first words: scripts match them
            f"Execution of {task} task failed (exit status {status}); v{release.version} is deployed"
        )
    log.detail("postdeploy done")
