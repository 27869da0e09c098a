"""`run`: one-off containers from the current release, with the app's config."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace

from docker.models.containers import Container

from paas.core import names, validation
from paas.core.context import Context
from paas.errors import PaasError
from paas.scheduler import host_containers as sched
from paas.scheduler import inventory
from paas.services import access, moves, quotas, schedulers
from paas.services.containers import container_settings
from paas.store import App


def create_oneoff(
    ctx: Context,
    app_name: str,
    command: str,
    tty: bool,
    size: tuple[int, int] | None = None,
    detached: bool = False,
) -> Container:
    """A created (not started) container: `/start <type>` for a Procfile type, else the command
    line through `bash -c` (or the app's `scheduler:set <app> shell`), as a remote shell would
    run it (Heroku's `run` semantics)."""
    app = access.authorize(ctx, app_name, "run")
    command = command.strip()
    if not command:
        raise PaasError("give a command to run, e.g. run myapp python manage.py migrate")
    release = ctx.store.current_release(app.id)
    build = ctx.store.build_of(release)
    if release is None or build is None or not build.image:
        raise PaasError(f"{app.name} has not been deployed yet")
    quotas.require_oneoff(ctx, app)
    if command in build.processes:
        cmd = [command]
    else:
        cmd = [moves.shell(ctx, app) or "bash", "-c", command]
    number = secrets.randbelow(9000) + 1000
    # The config as stored now (config:set --no-restart included), and what plugins add (mounts).
    settings = container_settings(ctx, app, replace(release, config=ctx.store.get_config(app.id)))
    env = {"DYNO": f"run.{number}", "PS": f"run.{number}"}
    if tty and "TERM" not in settings.env:
        env["TERM"] = "xterm"
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
            # Whoever attaches to it: reconcile removes it once that process is gone (a crash);
            # a detached one (run:detached) once it has exited.
            names.LABEL_OWNER: names.DETACHED if detached else names.process_token(os.getpid()) or "",
        },
    )
    with quotas.oneoff_slot(ctx, app):  # counted again and created, one session of the owner at a time
        container = ctx.docker.containers.create(
            build.image,
            command=cmd,
            entrypoint=entrypoint,
            name=f"paas-{app.name}-run-{number}-{secrets.token_hex(3)}",
            tty=tty,
            stdin_open=True,
            **sched.engine_kwargs(ctx.docker, build.image, settings, labels, env, names.ROLE_RUN),
        )
    ctx.store.add_event(app.name, ctx.actor, "run", command[:200])
    return container


def start_detached(ctx: Context, app_name: str, command: str) -> Container:
    """`run:detached`: a one-off that runs on its own; reconcile removes it once it exited."""
    container = create_oneoff(ctx, app_name, command, tty=False, detached=True)
    container.start()
    return container


# Buildpack images: /start sources .profile.d, then runs the words (bash without any). Images
# built from a Dockerfile may have no bash: their own shell.
ENTER_SHELL = 'if [ -x /start ]; then exec /start "$@"; fi; if [ $# -eq 0 ]; then exec /bin/sh; fi; exec "$@"'


def enter(ctx: Context, app_name: str, process: str | None, words: list[str], tty: bool) -> tuple[str, str]:
    """`enter`: an exec in a running process container of this host (web.1, or the first of a
    type, or the first one); returns the container's id and the exec id to attach to. No words: a
    login shell. A swarm app's tasks on this host (the manager) count; those on other nodes
    cannot be reached from here."""
    app = access.authorize(ctx, app_name, "enter")
    ptype, _, index = (process or "").partition(".")
    if process:
        validation.process_type(ptype)
    here = [
        p for p in inventory.processes(ctx.docker, ctx.settings.instance_id, app.name) if p.state == "running"
    ]
    found = [p for p in here if _matches(p.type, p.index, ptype, index)]
    # web first, then by number; the newest release first (a deploy's old process may linger)
    found.sort(key=lambda p: (p.type != "web", p.type, p.index, -p.release))
    if not found:
        _elsewhere(ctx, app, ptype, index, sorted({p.dyno for p in here}))
        raise PaasError(f"{app.name} has no running process {process or ''}".rstrip())
    proc = found[0]
    if not words and (chosen := moves.shell(ctx, app)):
        # `scheduler:set <app> shell`, found on PATH by env: one word to /start names a process type
        words = ["/usr/bin/env", chosen]
    cmd = ["/bin/sh", "-c", ENTER_SHELL, "sh", *words]
    exec_id = ctx.docker.api.exec_create(
        proc.container, cmd, stdin=True, tty=tty, environment={"TERM": "xterm"} if tty else None
    )["Id"]
    ctx.store.add_event(app.name, ctx.actor, "enter", proc.dyno)
    return proc.container, exec_id


def _matches(ptype: str, number: int, want_type: str, want_index: str) -> bool:
    return (not want_type or ptype == want_type) and (not want_index or str(number) == want_index)


def _elsewhere(ctx: Context, app: App, ptype: str, index: str, here: list[str]) -> None:
    """One clear line when the process runs, but on another node of the swarm."""
    away = schedulers.for_app(ctx, app).elsewhere(app.name)
    rows = [r for r in away if _matches(r.type, r.index, ptype, index)]
    if not rows:
        return
    row = min(rows, key=lambda r: (r.type != "web", r.type, r.index))
    if here:
        local = f"here: {', '.join(here)}"
    else:
        local = f"none of its processes run here; `run {app.name} <command>` starts a one-off here"
    raise PaasError(
        f"{app.name} {row.type}.{row.index} runs on node {row.node}: "
        f"enter reaches processes on this host only ({local})"
    )
