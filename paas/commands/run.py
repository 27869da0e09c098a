"""run: a one-off container from the current release; interactive with `ssh -t`."""

from __future__ import annotations

import shlex
import socket
import threading
from collections.abc import Callable
from dataclasses import replace

import click
import docker

from paas.commands import CommandEnv, command
from paas.core.engine import demux
from paas.errors import PaasError
from paas.services import oneoff


def _command_line(env: CommandEnv, app: str, words: tuple[str, ...]) -> str:
    """Over SSH, the rest of the line as the user typed it (like a remote shell would see it);
    on the host, the words the local shell already split, quoted back together."""
    raw = env.raw_command
    if raw is not None:
        lexer = shlex.shlex(raw, posix=True, punctuation_chars=False)
        lexer.whitespace_split = True
        first, second = lexer.get_token(), lexer.get_token()
        if first == "run" and second == app:
            return lexer.instream.read()
    return shlex.join(words)


@command(
    "run",
    "Run a command in a one-off container: run <app> <command...>.",
    terminal=True,
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("app")
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def run(env: CommandEnv, app: str, words: tuple[str, ...]) -> int:
    if env.stdio is None:
        raise PaasError("run needs a terminal or an SSH session")
    stdio = env.stdio
    tty = stdio.pty is not None
    size = (stdio.pty[1], stdio.pty[2]) if tty and stdio.pty[1] and stdio.pty[2] else None
    container = oneoff.create_oneoff(env.ctx, app, _command_line(env, app, words), tty, size)
    try:
        return _attach(env.ctx.docker, container, stdio, tty)
    finally:
        try:
            container.remove(force=True)
        except docker.errors.DockerException:
            pass


def _attach(client: docker.DockerClient, container, stdio, tty: bool) -> int:  # type: ignore[no-untyped-def]
    sock = client.api.attach_socket(
        container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, "logs": 1}
    )
    raw: socket.socket = getattr(sock, "_sock", sock)
    container.start()
    pump(raw, stdio, tty, container.kill, lambda cols, rows: _resize(container, cols, rows))
    return int(container.wait(timeout=60 * 60 * 24).get("StatusCode", 1))


def pump(
    raw: socket.socket, stdio, tty: bool, kill: Callable[[], None], resize: Callable[[int, int], None]
) -> None:  # type: ignore[no-untyped-def]
    """Join the session to a container's stream until it ends: input in, output out, window
    changes through; a client that went away (ssh dropped) cannot end the process itself: kill."""
    if tty and stdio.pty:
        resize(stdio.pty[1], stdio.pty[2])
    stdio.on_resize = resize

    def feed() -> None:
        try:
            while data := stdio.read(4096):
                raw.sendall(data)
            if not tty:  # end of input reaches the process as EOF (a terminal has no EOF)
                raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(0.5):
            if stdio.disconnected():
                try:
                    kill()
                except docker.errors.DockerException:
                    pass
                return

    threading.Thread(target=feed, daemon=True).start()
    threading.Thread(target=watch, daemon=True).start()
    try:
        if tty:
            while data := raw.recv(65536):
                stdio.write(data)
        else:
            demux(raw, stdio.write, stdio.write_err)
    except OSError:
        kill()
    finally:
        finished.set()
        stdio.on_resize = None


def _resize(container, cols: int, rows: int) -> None:  # type: ignore[no-untyped-def]
    try:
        container.resize(height=rows, width=cols)
    except docker.errors.DockerException:
        pass


@command(
    "run:detached",
    "Run a command in a one-off container in the background; prints its name (Dokku's).",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("app")
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def run_detached(env: CommandEnv, app: str, words: tuple[str, ...]) -> None:
    raw = env.raw_command
    if raw is not None:  # the line as typed after `run:detached <app>`, as `run` reads it
        env = replace(env, raw_command="run " + raw.split(None, 1)[1] if " " in raw else raw)
    container = oneoff.start_detached(env.ctx, app, _command_line(env, app, words))
    env.echo(container.name)
