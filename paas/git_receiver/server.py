"""The SSH front door (paramiko): key auth, git push/fetch, and every other command.

paramiko's ServerInterface callbacks run on the transport thread, so they only record what the
client asked for; the work happens in the connection's own thread. Git traffic is handed to a
separate `pack_process` per request; other commands run in-process through `paas.commands`.
"""

from __future__ import annotations

import io
import logging
import shlex
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paramiko
from dulwich.repo import Repo

from paas import commands
from paas.core.context import Context
from paas.core.validation import app_name
from paas.errors import PaasError
from paas.git_receiver import hostkey, pack_process
from paas.services import apps as apps_service
from paas.services import keys as keys_service
from paas.store import SshKey

log = logging.getLogger("paas.ssh")
GIT_COMMANDS = ("git-receive-pack", "git-upload-pack")
MAX_SESSIONS = 128  # concurrent SSH connections, authenticated or not


class ChannelWriter(io.TextIOBase):
    """A text stream onto a channel's stdout or stderr."""

    def __init__(self, channel: paramiko.Channel, stderr: bool = False) -> None:
        self._send = channel.sendall_stderr if stderr else channel.sendall
        self._pty = False

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        data = s.encode("utf-8", "replace")
        self._send(data.replace(b"\n", b"\r\n") if self._pty else data)
        return len(s)


@dataclass
class Session:
    key: SshKey | None = None
    command: bytes | None = None
    pty: tuple[str, int, int] | None = None
    stdio: ChannelStdio | None = None


class ChannelStdio:
    """Raw bytes over the channel, for `run` (see paas.commands.stdio.Stdio)."""

    def __init__(self, channel: paramiko.Channel, pty: tuple[str, int, int] | None) -> None:
        self.channel = channel
        self.pty = pty
        self.on_resize: Callable[[int, int], None] | None = None

    def read(self, n: int) -> bytes:
        try:
            return self.channel.recv(n)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        self.channel.sendall(data)

    def write_err(self, data: bytes) -> None:
        self.channel.sendall_stderr(data)

    def disconnected(self) -> bool:
        transport = self.channel.get_transport()
        return self.channel.closed or transport is None or not transport.is_active()

    def resized(self, cols: int, rows: int) -> None:
        if self.pty is not None:
            self.pty = (self.pty[0], cols, rows)
        if self.on_resize is not None:
            self.on_resize(cols, rows)


class _Interface(paramiko.ServerInterface):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.session = Session()
        self.ready = threading.Event()

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        record = keys_service.authenticate(self.ctx, key.asbytes())
        if record is None:
            return paramiko.AUTH_FAILED
        self.session.key = record
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.session.command = command
        self.ready.set()
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        self.session.command = b""
        self.ready.set()
        return True

    def check_channel_pty_request(self, channel, term, width, height, pw, ph, modes) -> bool:  # type: ignore[no-untyped-def]
        self.session.pty = (term.decode() if isinstance(term, bytes) else term, width, height)
        return True

    def check_channel_window_change_request(self, channel, width, height, pw, ph) -> bool:  # type: ignore[no-untyped-def]
        if self.session.stdio is not None:
            threading.Thread(target=self.session.stdio.resized, args=(width, height), daemon=True).start()
        return True

    def check_channel_env_request(self, channel: paramiko.Channel, name: bytes, value: bytes) -> bool:
        return False  # git then speaks protocol v0/v1, which dulwich serves


class SSHServer:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.host_key = hostkey.load_or_create(ctx.settings.host_key_path)
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_SESSIONS)
        self.pack_processes = pack_process.Spawner()

    def listen(self) -> tuple[str, int]:
        s = ctx_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ctx_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.ctx.settings.ssh_bind, self.ctx.settings.ssh_port))
        s.listen(128)
        self._sock = s
        return s.getsockname()[:2]

    def serve_forever(self) -> None:
        assert self._sock is not None
        self.pack_processes.prepare()
        while not self._stopping.is_set():
            try:
                conn, _addr = self._sock.accept()
            except OSError:
                break
            if not self._slots.acquire(blocking=False):  # too many sessions: refuse, don't queue
                conn.close()
                continue
            threading.Thread(target=self._handle_slot, args=(conn,), daemon=True).start()

    def _handle_slot(self, conn: socket.socket) -> None:
        try:
            self._handle(conn)
        finally:
            self._slots.release()

    def shutdown(self) -> None:
        self._stopping.set()
        self.pack_processes.close()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()

    # one connection
    def _handle(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        iface = _Interface(self.ctx)
        try:
            transport.start_server(server=iface)
            channel = transport.accept(timeout=30)
            if channel is None:
                return
            if not iface.ready.wait(30):
                channel.close()
                return
            status = 1
            try:
                status = self._dispatch(channel, iface.session)
            except Exception:
                log.exception("session failed")
                try:
                    channel.sendall_stderr(b"error: internal error (see the server log)\n")
                except OSError:
                    pass
            finally:
                _finish(channel, status)
                # Let the client hang up first, or git may report an early EOF.
                transport.join(timeout=10)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            log.debug("connection ended: %s", exc)
        finally:
            transport.close()

    def _dispatch(self, channel: paramiko.Channel, session: Session) -> int:
        assert session.key is not None
        ctx = self.ctx.for_actor(session.key.name, session.key.is_admin)
        raw = (session.command or b"").decode("utf-8", "replace")
        try:
            argv = shlex.split(raw)
        except ValueError as exc:
            channel.sendall_stderr(f"error: cannot parse the command: {exc}\n".encode())
            return 1
        if argv and argv[0] in GIT_COMMANDS:
            return self._git(channel, ctx, argv)
        out, err = ChannelWriter(channel), ChannelWriter(channel, stderr=True)
        if session.pty:
            out._pty = err._pty = True
        stdio = session.stdio = ChannelStdio(channel, session.pty)
        env = commands.CommandEnv(
            ctx=ctx,
            out=out,
            err=err,
            stdin=channel.makefile("rb"),
            pty=session.pty,
            stdio=stdio,
            raw_command=raw,
            disconnected=stdio.disconnected,
        )
        return commands.dispatch(argv, env)

    def _git(self, channel: paramiko.Channel, ctx: Context, argv: list[str]) -> int:
        if len(argv) != 2:
            channel.sendall_stderr(b"error: usage: git-receive-pack '<app>'\n")
            return 1
        path = argv[1].strip("/").removesuffix(".git")
        try:
            name = app_name(path)
            repo_path = ctx.settings.repos_dir / f"{name}.git"
            if argv[0] == "git-receive-pack":
                apps_service.ensure_app(ctx, name)
                if not repo_path.exists():
                    Repo.init_bare(str(repo_path), mkdir=True).close()
            else:
                apps_service.get_app(ctx, name)
                if not repo_path.exists():
                    raise PaasError(f"app {name!r} has no code yet: git push first")
        except PaasError as exc:
            channel.sendall_stderr(f"error: {exc}\n".encode())
            return 1
        mode = argv[0].removeprefix("git-")
        proc = self.pack_processes.start(mode, name, ctx.actor, ctx.is_admin)
        try:
            return _pump(channel, proc)
        finally:
            self.pack_processes.prepare()  # the next push finds one warm


def _pump(channel: paramiko.Channel, proc: subprocess.Popen) -> int:
    """Copy channel -> stdin and stdout/stderr -> channel until the process ends."""
    assert proc.stdin and proc.stdout and proc.stderr

    def feed() -> None:
        try:
            while data := channel.recv(65536):
                proc.stdin.write(data)  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            pass
        finally:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def errors() -> None:
        gone = False
        while data := proc.stderr.read1(65536):  # type: ignore[union-attr]
            if not gone:
                try:
                    channel.sendall_stderr(data)
                except OSError:
                    gone = True

    threading.Thread(target=feed, daemon=True).start()
    err_thread = threading.Thread(target=errors, daemon=True)
    err_thread.start()
    # If the client hangs up mid-push, keep draining: the build and deploy run to their end
    # (killing them half-way would leak build containers and leave a release half-switched).
    gone = False
    while data := proc.stdout.read1(65536):
        if not gone:
            try:
                channel.sendall(data)
            except OSError:
                gone = True
    status = proc.wait()
    err_thread.join(timeout=5)
    return status


def _finish(channel: paramiko.Channel, status: int) -> None:
    """Exit status first, then EOF, then close: what git and ssh expect."""
    try:
        channel.send_exit_status(status)
        channel.shutdown_write()
        channel.close()
    except (OSError, EOFError, paramiko.SSHException):
        pass
