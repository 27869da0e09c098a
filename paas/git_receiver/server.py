"""The SSH front door (paramiko): key auth, git push/fetch, and every other command.

paramiko's ServerInterface callbacks run on the transport thread, so they only record what the
client asked for; the work happens in the connection's own thread. Git traffic is handed to a
separate `pack_process` per request; other commands run in-process through `paas.commands`.
Each command acts as the key's user, read fresh from the store; a watcher ends open sessions
whose key was removed or whose user lost a permission the session was using.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paramiko
from dulwich.repo import Repo

from paas import commands
from paas.core.context import Context
from paas.core.validation import app_name, printable
from paas.errors import PaasError
from paas.git_receiver import hostkey, pack_process
from paas.services import access, throttle
from paas.services import apps as apps_service
from paas.services import keys as keys_service
from paas.store import SshKey

log = logging.getLogger("paas.ssh")
GIT_COMMANDS = ("git-receive-pack", "git-upload-pack")
MAX_SESSIONS = 512  # concurrent SSH connections in all (see services.throttle for the rest)


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


class _Resizer:
    """Applies window changes on one thread per session, started at the first change: a client
    sending thousands of them gets the latest size applied, not a thread each."""

    def __init__(self, stdio: ChannelStdio) -> None:
        self.stdio = stdio
        self._size: tuple[int, int] | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def change(self, cols: int, rows: int) -> None:
        self._size = (cols, rows)
        self._wake.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="ssh-resize")
            self._thread.start()

    def _run(self) -> None:
        while not self.stdio.disconnected():
            if not self._wake.wait(1.0):
                continue
            self._wake.clear()
            if self._size is not None:
                self.stdio.resized(*self._size)


class _Interface(paramiko.ServerInterface):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.session = Session()
        self.ready = threading.Event()
        self.channels = 0
        self.resizer: _Resizer | None = None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        record = keys_service.authenticate(self.ctx, key.asbytes())
        if record is None or record.user_id is None:
            return paramiko.AUTH_FAILED
        self.session.key = record
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            self.channels += 1
            if self.channels > throttle.MAX_CHANNELS:
                return paramiko.OPEN_FAILED_RESOURCE_SHORTAGE
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
            if self.resizer is None:
                self.resizer = _Resizer(self.session.stdio)
            self.resizer.change(width, height)
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
        self._gate = throttle.PreAuthGate()
        self._key_sessions = throttle.KeySessions()
        self._live: dict[paramiko.Transport, SshKey] = {}
        self._live_lock = threading.Lock()
        self._pending: dict[paramiko.Transport, float] = {}  # not logged in yet: their deadline
        # Sessions running a command: re-checked against the store (removed key, lost access).
        self._sessions: dict[paramiko.Channel, tuple[str, Context]] = {}
        self.pack_processes = pack_process.Spawner()

    def listen(self) -> tuple[str, int]:
        bind = self.ctx.settings.ssh_bind
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and ipaddress.ip_address(bind).is_unspecified:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # `::` serves IPv4 clients too
        s.bind((bind, self.ctx.settings.ssh_port))
        s.listen(128)
        self._sock = s
        return s.getsockname()[:2]

    def serve_forever(self) -> None:
        assert self._sock is not None
        threading.Thread(target=self._watch, daemon=True, name="ssh-watch").start()
        self.pack_processes.prepare()
        while not self._stopping.is_set():
            try:
                conn, addr = self._sock.accept()
            except OSError:
                break
            source = throttle.source_of(str(addr[0]))
            # Before login, per source and in total (MaxStartups-like): refuse, don't queue.
            if not self._gate.admit(source):
                _drop(conn)
                continue
            if not self._slots.acquire(blocking=False):  # too many sessions: refuse, don't queue
                self._gate.release(source)
                _drop(conn)
                continue
            threading.Thread(target=self._handle_slot, args=(conn, source), daemon=True).start()

    def _handle_slot(self, conn: socket.socket, source: str) -> None:
        pending = [True]

        def logged_in() -> None:
            if pending[0]:
                pending[0] = False
                self._gate.release(source)

        try:
            self._handle(conn, logged_in)
        finally:
            logged_in()
            self._slots.release()

    def _watch(self) -> None:
        """Cut clients still not logged in at their deadline (a dribbled banner or key exchange),
        and end the sessions whose key is gone or whose user lost what the session was using
        (`ssh-keys:remove`, `access:remove`, maybe run in another process)."""
        while not self._stopping.wait(throttle.KEY_CHECK_SECONDS):
            with self._live_lock:
                late = [t for t, deadline in self._pending.items() if deadline < time.monotonic()]
                sessions = list(self._sessions.items())
            for transport in late:
                transport.close()
            for channel, (fingerprint, ctx) in sessions:
                try:
                    reason = _revoked(self.ctx, fingerprint, ctx)
                except Exception:  # noqa: BLE001 - the store is busy: check again next round
                    log.exception("re-checking an SSH session failed")
                    continue
                if reason is None:
                    continue
                log.info("ending the SSH session of %s: %s", ctx.actor, reason)
                with self._live_lock:
                    self._sessions.pop(channel, None)
                transport = channel.get_transport()
                try:  # the line, an exit status, EOF: then the client hangs up by itself
                    channel.sendall_stderr(f"\r\nerror: session ended: {reason}\r\n".encode())
                    channel.send_exit_status(1)
                    channel.shutdown_write()
                except (OSError, EOFError, paramiko.SSHException):
                    pass
                if transport is not None:  # a client that does not hang up is cut a little later
                    threading.Timer(2.0, transport.close).start()

    def _logged_in(self, transport: paramiko.Transport, channel: paramiko.Channel, key: SshKey) -> bool:
        """Register a logged-in session (for the per-key cap and key removal); False if over the cap."""
        if not self._key_sessions.open(key):
            return False
        with self._live_lock:
            self._live[transport] = key
        return True

    def _logged_out(self, transport: paramiko.Transport) -> None:
        with self._live_lock:
            key = self._live.pop(transport, None)
        if key is not None:
            self._key_sessions.close(key)

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
    def _handle(self, conn: socket.socket, logged_in: Callable[[], None]) -> None:
        deadline = time.monotonic() + throttle.LOGIN_TIMEOUT
        transport = paramiko.Transport(conn)
        # The banner, key exchange, login and first channel must all fit in LOGIN_TIMEOUT.
        transport.banner_timeout = transport.handshake_timeout = throttle.LOGIN_TIMEOUT
        transport.auth_timeout = throttle.LOGIN_TIMEOUT
        transport.add_server_key(self.host_key)
        iface = _Interface(self.ctx)
        registered = False
        with self._live_lock:
            self._pending[transport] = deadline
        try:
            transport.start_server(server=iface)
            channel = transport.accept(timeout=max(0.1, deadline - time.monotonic()))
            if channel is None or not transport.is_authenticated() or iface.session.key is None:
                return
            with self._live_lock:
                self._pending.pop(transport, None)
            logged_in()
            registered = self._logged_in(transport, channel, iface.session.key)
            if not registered:
                # Say why once the client has asked for its command: sent earlier, OpenSSH may
                # drop the line and see only the closed channel.
                if _wait_command(iface, transport):
                    channel.sendall_stderr(
                        f"error: {throttle.too_many_sessions(iface.session.key)}\n".encode()
                    )
                _finish(channel, 1)
                transport.join(timeout=5)  # the client hangs up first, having read the line
                return
            if not _wait_command(iface, transport):
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
            with self._live_lock:
                self._pending.pop(transport, None)
            if registered:
                self._logged_out(transport)
            transport.close()

    def _dispatch(self, channel: paramiko.Channel, session: Session) -> int:
        assert session.key is not None
        fingerprint = session.key.fingerprint
        ctx = keys_service.session_context(self.ctx, fingerprint)
        if ctx is None:  # removed between authentication and the command
            channel.sendall_stderr(b"error: this key is not allowed any more\n")
            return 1
        with self._live_lock:
            self._sessions[channel] = (fingerprint, ctx)
        try:
            return self._run(channel, session, ctx)
        finally:
            with self._live_lock:
                self._sessions.pop(channel, None)

    def _run(self, channel: paramiko.Channel, session: Session, ctx: Context) -> int:
        raw = (session.command or b"").decode("utf-8", "replace")
        try:
            argv = shlex.split(raw)
        except ValueError as exc:
            channel.sendall_stderr(f"error: cannot parse the command: {printable(str(exc))}\n".encode())
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
                access.authorize(ctx, name, "git:fetch")
                if not repo_path.exists():
                    raise PaasError(f"app {name!r} has no code yet: git push first")
        except PaasError as exc:
            channel.sendall_stderr(f"error: {printable(str(exc))}\n".encode())
            return 1
        mode = argv[0].removeprefix("git-")
        proc = self.pack_processes.start(mode, name, ctx.actor, ctx.is_admin, ctx.user_id)
        try:
            return _pump(channel, proc)
        finally:
            self.pack_processes.prepare()  # the next push finds one warm


def _revoked(base: Context, fingerprint: str, ctx: Context) -> str | None:
    """Why an open session must end (None: it may go on)."""
    if base.store.get_key_by_fingerprint(fingerprint) is None:
        return "the key was removed"
    if not access.still_allowed(ctx):
        return "access to the app was removed"
    return None


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


def _wait_command(iface: _Interface, transport: paramiko.Transport, timeout: float = 30) -> bool:
    """Until the client says what to run; False if it does not, or hangs up first."""
    deadline = time.monotonic() + timeout
    while not iface.ready.wait(0.2):
        if not transport.is_active() or time.monotonic() > deadline:
            return False
    return True


def _drop(conn: socket.socket) -> None:
    """Close a refused connection at once (RST, no TIME_WAIT pile-up under a flood)."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    conn.close()


def _finish(channel: paramiko.Channel, status: int) -> None:
    """Exit status first, then EOF, then close: what git and ssh expect."""
    try:
        channel.send_exit_status(status)
        channel.shutdown_write()
        channel.close()
    except (OSError, EOFError, paramiko.SSHException):
        pass
