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
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError

RELEASE_TYPE = "release"
TIMEOUT_SECONDS = 30 * 60


class ReleasePhaseFailed(PaasError):
    """The release command (or postdeploy script) exited non-zero or did not finish."""


class _IndentedLog:
    """The command's own output, as detail lines of the build log."""

    def __init__(self, log: BuildLog) -> None:
        self._log = log

    def line(self, text: str) -> None:
        self._log.detail(text)


def run_oneoff(
    ctx: Context,
    app: str,
    version: int,
    image: str,
    command: list[str],
    env: dict[str, str],
    dyno: str,
    log: BuildLog,
    timeout: int = TIMEOUT_SECONDS,
) -> int:
    """Run a command to completion in a fresh container from `image`; return its exit status."""
    client = ctx.docker
    container = client.containers.create(
        image,
        command=command,
        name=f"paas-{app}-{dyno.replace('.', '-')}-v{version}-{uuid.uuid4().hex[:6]}",
        environment={**env, "DYNO": dyno, "PS": dyno},
        init=True,
        labels=names.app_labels(
            ctx.settings.instance_id,
            app,
            names.ROLE_ONEOFF,
            **{names.LABEL_RELEASE: str(version), names.LABEL_TYPE: dyno.split(".")[0]},
        ),
    )
    try:
        container.start()
        # The output streams from a thread so that the wait below can time out.
        streamer = threading.Thread(target=stream_lines, args=(container, _IndentedLog(log)), daemon=True)
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
    ctx: Context,
    app: str,
    version: int,
    image: str,
    processes: dict[str, str],
    config: dict[str, str],
    log: BuildLog,
) -> None:
    """The `release:` process, if the build has one; raises when it fails."""
    command = processes.get(RELEASE_TYPE)
    if not command:
        return
    log.step(f"Running release command: {command}")
    status = run_oneoff(ctx, app, version, image, [RELEASE_TYPE], config, "release.1", log)
    if status != 0:
        raise ReleasePhaseFailed(
            f"release command failed (exit status {status}): v{version} was not deployed"
        )
    log.detail("release command done")


def run_postdeploy(
    ctx: Context, app: str, version: int, image: str, command: str, config: dict[str, str], log: BuildLog
) -> None:
    """app.json's `scripts.postdeploy`, after the first deploy; a failure is reported, not undone."""
    log.step(f"Running postdeploy: {command}")
    status = run_oneoff(ctx, app, version, image, ["/bin/sh", "-c", command], config, "postdeploy.1", log)
    if status != 0:
        log.error(f"postdeploy failed (exit status {status}); the app is deployed")
    else:
        log.detail("postdeploy done")
