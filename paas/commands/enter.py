"""enter (Dokku's): a shell, or a command, inside a running process of an app; `ssh -t` for a TTY."""

from __future__ import annotations

import socket

import click
import docker

from paas.commands import CommandEnv, command
from paas.commands.run import pump
from paas.errors import PaasError
from paas.services import oneoff


@command(
    "enter",
    "A shell in a running process: enter <app> [web.1] [-- command...] (use ssh -t).",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("app")
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def enter(env: CommandEnv, app: str, words: tuple[str, ...]) -> int:
    if env.stdio is None:
        raise PaasError("enter needs a terminal or an SSH session")
    rest = list(words)
    process = rest.pop(0) if rest and rest[0] != "--" else None
    if rest[:1] == ["--"]:
        rest = rest[1:]
    stdio = env.stdio
    tty = stdio.pty is not None
    client: docker.DockerClient = env.ctx.docker
    _, exec_id = oneoff.enter(env.ctx, app, process, rest, tty)
    sock = client.api.exec_start(exec_id, tty=tty, socket=True)
    raw: socket.socket = getattr(sock, "_sock", sock)

    def resize(cols: int, rows: int) -> None:
        try:
            client.api.exec_resize(exec_id, height=rows, width=cols)
        except docker.errors.DockerException:
            pass

    def kill() -> None:  # an exec cannot be killed through the API: closing its stream ends it
        raw.close()

    pump(raw, stdio, tty, kill, resize)
    code = client.api.exec_inspect(exec_id).get("ExitCode")
    return int(code) if code is not None else 1
