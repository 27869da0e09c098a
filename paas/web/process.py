"""The dashboard's gunicorns, run and watched by `paas server`.

Pages and the API run on gthread workers (a deploy from a page runs as a background job,
`paas.services.jobs`; one from the API holds a thread, at most half of them). Live log streams
and deploy jobs' output (Server-Sent Events) run on a second gunicorn with one gevent worker,
on a loopback port that nginx sends the stream paths to: an open browser tab costs a greenlet
there, not a thread of the pages. Its listening socket (loopback, a free port) is made here and
passed down, so it keeps its port across restarts and never collides. A gunicorn that a killed
server left behind is stopped first (its pid file says which), so a restart always runs the
current code and settings.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from paas.errors import PaasError
from paas.settings import Settings

RESTART_BACKOFF = (1, 2, 5, 10, 30)  # seconds before each restart after a crash, then the last
STREAM_CONNECTIONS = 1000  # open live streams the evented gunicorn serves at once


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _no_control_socket() -> list[str]:
    """gunicorn >= 24 opens a control socket in $HOME, which two servers on one host would share."""
    from gunicorn.config import KNOWN_SETTINGS

    return ["--no-control-socket"] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []


class DashboardProcess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid_path = settings.data_dir / "web.pid"
        self.streams_pid_path = settings.data_dir / "web-streams.pid"
        self._proc: subprocess.Popen | None = None
        self._streams: subprocess.Popen | None = None
        self._streams_sock: socket.socket | None = None
        self._crashes = 0
        self._next_start = 0.0
        self._started_at = 0.0

    @property
    def _title(self) -> str:
        """gunicorn's process name: names this data dir's dashboard and no other process."""
        return f"paas-web {self.settings.data_dir}"

    @property
    def _streams_title(self) -> str:
        return f"paas-web-streams {self.settings.data_dir}"

    def _streams_listener(self) -> socket.socket:
        if self._streams_sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(1024)
            self._streams_sock = sock
        return self._streams_sock

    @property
    def streams_upstream(self) -> str:
        """Where nginx sends the live-stream paths (see dashboard.conf.j2)."""
        return _hostport(*self._streams_listener().getsockname()[:2])

    @property
    def listen(self) -> str:
        return _hostport(self.settings.web_bind, self.settings.web_port)

    @property
    def upstream(self) -> str:
        """Where nginx reaches it: loopback when gunicorn listens on every address."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(
            self.settings.web_bind, self.settings.web_bind
        )
        return _hostport(host, self.settings.web_port)

    def command(self) -> list[str]:
        s = self.settings
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            self.listen,
            "--worker-class",
            "gthread",
            "--workers",
            str(s.web_workers),
            "--threads",
            str(s.web_threads),
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--pid",
            str(self.pid_path),
            "--access-logfile",
            "-",
            "--error-logfile",
            "-",
            "--forwarded-allow-ips",
            "127.0.0.1,::1",
            "--name",
            self._title,
            *_no_control_socket(),
            "paas.web:create_app()",
        ]

    def streams_command(self) -> list[str]:
        """One gevent worker (a greenlet per stream): the docker log follow and the store calls
        of a stream are I/O, which gevent's patched sockets interleave."""
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"fd://{self._streams_listener().fileno()}",
            "--worker-class",
            "gevent",
            "--workers",
            "1",
            "--worker-connections",
            str(STREAM_CONNECTIONS),
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--pid",
            str(self.streams_pid_path),
            "--access-logfile",
            "-",
            "--error-logfile",
            "-",
            "--forwarded-allow-ips",
            "127.0.0.1,::1",
            "--name",
            self._streams_title,
            *_no_control_socket(),
            "paas.web:create_app()",
        ]

    def _stop_leftover(self) -> None:
        for pid_path, title in ((self.pid_path, self._title), (self.streams_pid_path, self._streams_title)):
            self._stop_pid_file(pid_path, title)

    @staticmethod
    def _stop_pid_file(pid_path: Path, title: str) -> None:
        try:
            pid = int(pid_path.read_text().strip())
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        except (OSError, ValueError):
            return
        if title.encode() + b"\0" not in cmdline + b"\0" and title.encode() + b"]" not in cmdline:
            return  # a recycled pid: someone else's process
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.05)

    def _check_port(self) -> None:
        family = socket.AF_INET6 if ":" in self.settings.web_bind else socket.AF_INET
        with socket.socket(family) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.settings.web_bind, self.settings.web_port))
            except OSError as exc:
                raise PaasError(
                    f"cannot listen for the dashboard on {self.listen}: {exc.strerror} (set PAAS_WEB_PORT)"
                ) from None

    def start(self) -> None:
        """Spawn gunicorn (see `wait_ready`)."""
        self._stop_leftover()
        self._check_port()
        self._started_at = time.monotonic()
        log = open(self.settings.web_log_path, "ab")  # noqa: SIM115 - the children keep it
        try:
            fd = self._streams_listener().fileno()
            self._proc, self._streams = (
                subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C on the server's terminal is for the server
                    pass_fds=fds,
                )
                for cmd, fds in ((self.command(), ()), (self.streams_command(), (fd,)))
            )
        finally:
            log.close()

    def wait_ready(self, timeout: float = 30) -> None:
        """Until gunicorn accepts connections; a gunicorn that exits first is an error."""
        deadline = time.monotonic() + timeout
        host, port = self.upstream.rsplit(":", 1)
        while True:
            if not self.alive():
                raise PaasError(f"the dashboard did not start; see {self.settings.web_log_path}")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise PaasError(f"the dashboard did not listen within {timeout:g} s; see its log")
            time.sleep(0.05)

    def alive(self) -> bool:
        """Both gunicorns run (if one died, `restart_if_dead` restarts the pair)."""
        return all(p is not None and p.poll() is None for p in (self._proc, self._streams))

    def restart_if_dead(self) -> bool:
        """Start it again after a crash, backing off while it keeps crashing. True if restarted."""
        if self.alive() or time.monotonic() < self._next_start:
            return False
        if time.monotonic() - self._started_at > 60:  # it had been fine for a while
            self._crashes = 0
        self._crashes += 1
        self._next_start = time.monotonic() + RESTART_BACKOFF[min(self._crashes, len(RESTART_BACKOFF)) - 1]
        self.stop()
        try:
            self.start()
        except PaasError:
            return False
        return True

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (gunicorn finishes in-flight requests), then SIGKILL."""
        procs = [p for p in (self._proc, self._streams) if p is not None and p.poll() is None]
        self._proc = self._streams = None
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
