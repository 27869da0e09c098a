"""`run`: one-off containers from the current release, with the app's config."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace

from docker.models.containers import Container

from paas.core import names
from paas.core.context import Context
from paas.errors import PaasError
from paas.scheduler import docker_local as sched
from paas.services import access
from paas.services.containers import container_settings


def create_oneoff(
    ctx: Context, app_name: str, command: str, tty: bool, size: tuple[int, int] | None = None
) -> Container:
    """A created (not started) container: `/start <type>` for a Procfile type, else the command
    line through `bash -c`, as a remote shell would run it (Heroku's `run` semantics)."""
    app = access.authorize(ctx, app_name, "run")
    command = command.strip()
    if not command:
        raise PaasError("give a command to run, e.g. run myapp python manage.py migrate")
    release = ctx.store.current_release(app.id)
    build = ctx.store.get_build(release.build_id) if release and release.build_id else None
    if release is None or build is None or not build.image:
        raise PaasError(f"{app.name} has not been deployed yet")
    if command in build.processes:
        cmd = [command]
    else:
        cmd = ["bash", "-c", command]
    number = secrets.randbelow(9000) + 1000
    # The config as stored now (config:set --no-restart included), and what plugins add (mounts).
    settings = container_settings(ctx, app, replace(release, config=ctx.store.get_config(app.id)))
    env = {"DYNO": f"run.{number}", "PS": f"run.{number}"}
    if tty and "TERM" not in settings.env:
        env["TERM"] = "xterm"
    ctx.store.add_event(app.name, ctx.actor, "run", command[:200])
    entrypoint = None
    if tty and size:
        # dockerd 20.10 cannot create a TTY with a size; set it before the launcher runs, so the
        # very first thing the command sees is the user's window.
        cols, rows = size
        entrypoint = [
            "sh",
            "-c",
            'stty cols "$1" rows "$2" 2>/dev/null; shift 2; exec /start "$@"',
            "sh",
            str(int(cols)),
            str(int(rows)),
        ]
    labels = names.app_labels(
        ctx.settings.instance_id,
        app.name,
        names.ROLE_RUN,
        **{
            names.LABEL_RELEASE: str(release.version),
            names.LABEL_TYPE: names.ROLE_RUN,
            names.LABEL_INDEX: str(number),
            # Whoever attaches to it: reconcile removes it once that process is gone (a crash).
            names.LABEL_OWNER: names.process_token(os.getpid()) or "",
        },
    )
    return ctx.docker.containers.create(
        build.image,
        command=cmd,
        entrypoint=entrypoint,
        name=f"paas-{app.name}-run-{number}-{secrets.token_hex(3)}",
        tty=tty,
        stdin_open=True,
        **sched.engine_kwargs(ctx.docker, build.image, settings, labels, env, names.ROLE_RUN),
    )
