"""The managed nginx: its own prefix under the data dir, config rendered from jinja2 templates.

Every change is rendered into a staging copy, checked with `nginx -t`, and only then moved into
place and reloaded (SIGHUP keeps in-flight requests on the old workers). A lock file serialises
changes from concurrent deploys (they run in separate processes).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jinja2

from paas.core.routes import Route, directive, location_path
from paas.errors import PaasError
from paas.settings import Settings

_SAFE = re.compile(r"^[A-Za-z0-9.*:_\[\]-]+$")
DASHBOARD = "_dashboard"  # its conf sits with the apps'; no app name starts with "_"


def _nginx_token(value: object) -> str:
    """Refuse anything that could break out of an nginx directive (validated upstream too)."""
    text = str(value)
    if not _SAFE.fullmatch(text):
        raise PaasError(f"refusing unsafe value in nginx config: {text!r}")
    return text


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("paas.router", "templates"),
    autoescape=False,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["tok"] = _nginx_token


class Router:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prefix = settings.nginx_dir
        self.conf_dir = self.prefix / "conf"
        self.apps_dir = self.conf_dir / "apps"
        self.main_conf = self.conf_dir / "nginx.conf"
        self.pid_path = self.prefix / "run" / "nginx.pid"
        self._proc: subprocess.Popen | None = None
        self.adopted = False
        self._layout_ready = False

    # rendering
    @property
    def listen(self) -> str:
        return f"{self.settings.http_bind}:{self.settings.http_port}"

    def _worker_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        for name in ("www-data", "nobody"):
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
        return None

    def render_main(self, apps_dir: Path, pid_path: Path) -> str:
        return _env.get_template("nginx.conf.j2").render(
            prefix=str(self.prefix),
            pid_path=str(pid_path),
            apps_dir=str(apps_dir),
            listen=self.listen,
            user=self._worker_user(),
            domain=_nginx_token(self.settings.domain),
        )

    def render_app(self, route: Route) -> str:
        return _env.get_template("app.conf.j2").render(
            app=route.app,
            hostnames=route.hostnames,
            upstreams=route.upstreams,
            server_directives=[directive(d) for d in route.extras.server],
            locations={
                location_path(p): [directive(d) for d in ds] for p, ds in route.extras.locations.items()
            },
            listen=self.listen,
        )

    # layout and checks
    def ensure_layout(self) -> None:
        """Folders and the main config, once per Router: every route change calls this."""
        if self._layout_ready:
            return
        for d in (
            self.conf_dir,
            self.apps_dir,
            self.prefix / "logs",
            self.prefix / "run",
            self.prefix / "tmp",
        ):
            d.mkdir(parents=True, exist_ok=True)
        # The server writes with umask 077; nginx's workers (www-data) must still reach the files
        # the master hands them: log files reopened on USR1, temp files. Traverse, not list.
        for d in (self.prefix, self.prefix / "logs", self.prefix / "tmp"):
            d.chmod(0o711 if d != self.prefix else 0o755)
        text = self.render_main(self.apps_dir, self.pid_path)
        if not self.main_conf.exists() or self.main_conf.read_text() != text:
            self._check_candidate({})
            self._write_atomic(self.main_conf, text)
        self._layout_ready = True

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.settings.locks_dir.mkdir(parents=True, exist_ok=True)
        with open(self.settings.locks_dir / "router.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @staticmethod
    def _write_atomic(path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def _check_candidate(self, changes: dict[str, str | None]) -> None:
        """`nginx -t` on a staging copy: current app files with `changes` applied (None removes)."""
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=self.conf_dir))
        try:
            apps = staging / "apps"
            apps.mkdir()
            for f in self.apps_dir.glob("*.conf"):
                shutil.copy(f, apps / f.name)
            for name, text in changes.items():
                target = apps / f"{name}.conf"
                if text is None:
                    target.unlink(missing_ok=True)
                else:
                    target.write_text(text)
            main = self.render_main(apps, staging / "nginx.pid")
            (staging / "nginx.conf").write_text(main)
            result = subprocess.run(
                [
                    self.settings.nginx_bin,
                    "-t",
                    "-q",
                    "-p",
                    str(self.prefix),
                    "-c",
                    str(staging / "nginx.conf"),
                ],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                detail = (result.stderr or result.stdout).strip().splitlines()
                raise PaasError("router config rejected by nginx -t: " + (detail[0] if detail else "?"))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # changes
    def set_route(self, route: Route) -> None:
        """Serve `route`; a route that serves nothing (no upstreams, no plugin answer) is removed."""
        self.ensure_layout()
        self._install(route.app, self.render_app(route) if route.serves else None)

    def set_dashboard(self, hostname: str, upstream: str | None, streams: str | None = None) -> None:
        """Route `paas.<domain>` to the dashboard's gunicorn (live streams to `streams`, the
        evented one); None removes the route."""
        self.ensure_layout()
        text = None
        if upstream is not None:
            text = _env.get_template("dashboard.conf.j2").render(
                hostname=hostname,
                upstream=upstream,
                listen=self.listen,
                streams=streams,
            )
        self._install(DASHBOARD, text)

    def _install(self, name: str, text: str | None) -> None:
        """Check `apps/<name>.conf` with nginx -t, then put it in place (None: remove) and reload."""
        target = self.apps_dir / f"{name}.conf"
        with self._lock():
            current = target.read_text() if target.exists() else None
            if current == text:
                return
            self._check_candidate({name: text})
            if text is None:
                target.unlink(missing_ok=True)
            else:
                self._write_atomic(target, text)
            try:
                self.reload()
            except PaasError:
                # Put the previous route back so the file on disk matches what should serve.
                if current is None:
                    target.unlink(missing_ok=True)
                else:
                    self._write_atomic(target, current)
                raise

    def remove_app(self, app: str) -> None:
        self.ensure_layout()
        self._install(app, None)

    def routed_apps(self) -> list[str]:
        return sorted(p.stem for p in self.apps_dir.glob("*.conf") if p.stem != DASHBOARD)

    # the nginx process
    def running_pid(self) -> int | None:
        """The pid in our pid file, if that process is our nginx's master (its title names our
        prefix): a stale file whose pid was recycled must never get our signals."""
        try:
            pid = int(self.pid_path.read_text().strip())
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError):
            return None
        if not title.startswith(b"nginx: master process") or f"-p {self.prefix} ".encode() not in title:
            return None
        return pid

    @staticmethod
    def _serving_workers(master: int) -> set[int]:
        """Workers that accept requests (old ones retitle to '... is shutting down')."""
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        except OSError:
            return set()
        serving = set()
        for child in children:
            try:
                title = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").strip()
            except OSError:
                continue
            if title == b"nginx: worker process":
                serving.add(int(child))
        return serving

    def reload(self, timeout: float = 10) -> bool:
        """SIGHUP nginx and wait until only workers with the new config accept requests,
        so that "deployed" means "routed"."""
        pid = self.running_pid()
        if pid is None:
            return False
        before = self._serving_workers(pid)
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self._serving_workers(pid)
            if now and not (now & before):
                return True
            time.sleep(0.02)
        raise PaasError("nginx did not pick up the new config (see the router's error.log)")

    def start(self) -> None:
        """Run nginx as our child, or adopt the one a crashed server left running (it kept
        routing apps meanwhile) and make it load the current config."""
        self.ensure_layout()
        if self.running_pid() is not None:
            self.adopted = True
            self.reload()
            return
        self._proc = subprocess.Popen(
            [self.settings.nginx_bin, "-p", str(self.prefix), "-c", str(self.main_conf), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C on the server's terminal is for the server, not nginx
        )
        deadline = time.monotonic() + 10
        while self.running_pid() is None:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise PaasError(f"nginx did not start; see {self.prefix / 'logs' / 'error.log'}")
            time.sleep(0.02)

    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self.running_pid() is not None

    def stop(self, timeout: float = 10) -> None:
        """Graceful stop (SIGQUIT lets in-flight requests finish), then SIGKILL."""
        pid = self.running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None:
                if self._proc.poll() is not None:
                    break
            elif self.running_pid() is None:
                break
            time.sleep(0.05)
        else:
            pid = self.running_pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait()
        self._proc = None
