"""run: a one-off container from the current release; interactive with `ssh -t`."""

from __future__ import annotations

import shlex
import socket
import struct
import threading

import click
import docker

from paas.commands import CommandEnv, command
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
    if tty and stdio.pty:
        _resize(container, stdio.pty[1], stdio.pty[2])
    stdio.on_resize = lambda cols, rows: _resize(container, cols, rows)

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
        """A client that went away (ssh dropped) cannot end the process itself: kill it."""
        while not finished.wait(0.5):
            if stdio.disconnected():
                try:
                    container.kill()
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
            _demux(raw, stdio)
    except OSError:
        container.kill()
    finally:
        finished.set()
    status = container.wait(timeout=60 * 60 * 24).get("StatusCode", 1)
    stdio.on_resize = None
    return int(status)


def _resize(container, cols: int, rows: int) -> None:  # type: ignore[no-untyped-def]
    try:
        container.resize(height=rows, width=cols)
    except docker.errors.DockerException:
        pass


def _recv_exact(raw: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = raw.recv(n - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return buf


def _demux(raw: socket.socket, stdio) -> None:  # type: ignore[no-untyped-def]
    """Docker's multiplexed stream without a TTY: 8-byte headers (stream, size) per frame."""
    while header := _recv_exact(raw, 8):
        stream, size = struct.unpack(">BxxxL", header)
        data = _recv_exact(raw, size)
        if stream == 2:
            stdio.write_err(data)
        else:
            stdio.write(data)
