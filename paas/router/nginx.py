"""The managed nginx: its own prefix under the data dir, config rendered from jinja2 templates.

Every change is rendered into a staging config (the changed files, and the others included where
they are), checked with `nginx -t`, and only then moved into place and reloaded (SIGHUP keeps
in-flight requests on the old workers). A lock file serialises changes from concurrent deploys
(they run in separate processes).

A deploy checks its route ahead (`precheck_route`, while the new processes settle): the change
then only writes and reloads, unless the config it was checked against changed since.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import jinja2

from paas.core.routes import (
    ACME_CHALLENGE,
    ProxyOptions,
    Route,
    RouteTls,
    directive,
    forwarded_value,
    location_path,
)
from paas.errors import PaasError
from paas.settings import Settings

_SAFE = re.compile(r"^[A-Za-z0-9.*:_\[\]-]+$")
# What every app's server inherits from nginx.conf's http block (an app may override each with
# `nginx:set`, services/routing.py); nginx's own defaults for the rest.
HTTP_DEFAULTS = {
    "client_max_body_size": "100m",
    "proxy_buffering": "off",
    "proxy_read_timeout": "300s",
    # Apps are reached on their containers' own addresses: connecting to one that vanished (its
    # neighbour entry still fresh) is never refused, it hangs. A local connect takes well under a
    # millisecond; after 2 s (one SYN retransmit) nginx moves on to the next upstream. A swarm
    # task on a node that died answers nothing either, until the reconcile loop drops it.
    "proxy_connect_timeout": "2s",
}
NGINX_DEFAULTS = {
    "client_body_timeout": "60s",
    "client_header_timeout": "60s",
    "keepalive_timeout": "75s",
    "lingering_timeout": "5s",
    "send_timeout": "60s",
    "proxy_send_timeout": "60s",
    "proxy_buffer_size": "4k",
    "proxy_buffers": "8 4k",
    "proxy_busy_buffers_size": "8k",
    "underscores_in_headers": "off",
}
LOG_BUFFER = "buffer=64k flush=1s"  # every access_log of the router's: one file, one buffer
DASHBOARD = "_dashboard"  # its conf sits with the apps'; no app name starts with "_"
PRECHECK_TTL = 10.0  # seconds a passed `nginx -t` of the very same config stands in for a new one
# RFC 7919 ffdhe2048, what Mozilla's "intermediate" profile uses for its DHE suites.
FFDHE2048 = """-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""


def _nginx_token(value: object) -> str:
    """Refuse anything that could break out of an nginx directive (validated upstream too)."""
    text = str(value)
    if not _SAFE.fullmatch(text):
        raise PaasError(f"refusing unsafe value in nginx config: {text!r}")
    return text


_PATH = re.compile(r"^/[A-Za-z0-9_./-]+$")
_VARIABLE = re.compile(r"^[a-z0-9_]{1,64}$")


def _variable(app: str) -> str:
    """The app's part of an nginx variable and log format name (app names have no "_", so
    "-" -> "_" keeps them apart)."""
    name = app.replace("-", "_")
    if not _VARIABLE.fullmatch(name):
        raise PaasError(f"refusing unsafe app name in nginx config: {app!r}")
    return name


def _nginx_path(value: object) -> str:
    """An absolute path of plain characters (certificates, challenge folders)."""
    text = str(value)
    if not _PATH.fullmatch(text) or "/../" in text + "/":
        raise PaasError(f"refusing unsafe path in nginx config: {text!r}")
    return text


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("paas.router", "templates"),
    autoescape=False,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_HSTS = re.compile(r"^max-age=[0-9]{1,9}(?:; includeSubDomains)?(?:; preload)?$")


def _hsts_value(value: object) -> str:
    """A Strict-Transport-Security value as ProxyOptions builds it, and nothing else."""
    text = str(value)
    if not _HSTS.fullmatch(text):
        raise PaasError(f"refusing HSTS value in nginx config: {text!r}")
    return text


_env.filters["tok"] = _nginx_token
_env.filters["path"] = _nginx_path
_env.filters["header"] = forwarded_value
_env.filters["hsts"] = _hsts_value


def _covers(tls: RouteTls, hostname: str) -> bool:
    """Whether one of the certificate's names matches `hostname` (a `*.` name: one label)."""
    for name in tls.hostnames:
        if name == hostname:
            return True
        if name.startswith("*.") and "." in hostname and hostname.split(".", 1)[1] == name[2:]:
            return True
    return False


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
        self._prechecked: tuple[str, float] | None = None  # (fingerprint, when): see precheck_route

    # rendering
    @property
    def listen(self) -> str:
        return f"{self.settings.http_bind}:{self.settings.http_port}"

    @property
    def https_listen(self) -> str | None:
        """Where nginx terminates TLS, or None when PAAS_HTTPS_PORT is 0."""
        if not self.settings.https_port:
            return None
        return f"{self.settings.https_bind}:{self.settings.https_port}"

    @property
    def https_suffix(self) -> str:
        """What follows the host in an https:// URL of ours (`:8443`, or nothing on 443)."""
        return "" if self.settings.https_port == 443 else f":{self.settings.https_port}"

    def listens(self, proxy: ProxyOptions, https: bool = False) -> list[str]:
        """Where an app's server blocks listen: the server's address, or the app's own
        (`bind-address-ipv4`), and an IPv6 address when the app names one."""
        if https:
            bind, port = self.settings.https_bind, self.settings.https_port
        else:
            bind, port = self.settings.http_bind, self.settings.http_port
        out = [f"{proxy.bind_ipv4 or bind}:{port}"]
        if proxy.bind_ipv6:
            out.append(f"[{proxy.bind_ipv6}]:{port}")
        return out

    @property
    def dhparam_path(self) -> Path:
        return self.conf_dir / "ffdhe2048.pem"

    @staticmethod
    def _resolver() -> str | None:
        """The host's first name server, for OCSP stapling (nginx resolves responders itself)."""
        try:
            for line in Path("/etc/resolv.conf").read_text().splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver" and _SAFE.fullmatch(parts[1]):
                    return f"[{parts[1]}]" if ":" in parts[1] else parts[1]
        except OSError:
            pass
        return None

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
        proxies = self.settings.trusted_proxies
        return _env.get_template("nginx.conf.j2").render(
            prefix=str(self.prefix),
            pid_path=str(pid_path),
            apps_dir=str(apps_dir),
            listen=self.listen,
            user=self._worker_user(),
            https_listen=self.https_listen,
            dhparam=str(self.dhparam_path),
            resolver=self._resolver(),
            trusted_proxies=[str(ipaddress.ip_network(n, strict=False)) for n in proxies],
            domain=_nginx_token(self.settings.domain),
            http_defaults=[directive(f"{k} {v}") for k, v in HTTP_DEFAULTS.items()],
            log_buffer=LOG_BUFFER,
        )

    def render_app(self, route: Route) -> str:
        """The app's server blocks. With a certificate: an HTTPS block for the names it covers
        (SNI picks it), and for those names plain HTTP redirects (unless turned off); names it
        does not cover stay on plain HTTP."""
        tls = route.extras.tls if self.https_listen else None
        covered = [h for h in route.hostnames if tls and _covers(tls, h)]
        plain = [h for h in route.hostnames if h not in covered]
        return _env.get_template("app.conf.j2").render(
            app=route.app,
            hostnames=route.hostnames,
            upstreams=route.upstreams,
            releases={u: r for u, r in sorted(route.releases.items()) if u in route.upstreams},
            metrics_log=route.extras.metrics_log,
            access_log=str(self.prefix / "logs" / "access.log"),
            log_buffer=LOG_BUFFER,
            var=_variable(route.app),
            server_directives=[directive(d) for d in route.extras.server],
            locations={
                location_path(p): [directive(d) for d in ds] for p, ds in route.extras.locations.items()
            },
            listens=self.listens(route.extras.proxy),
            https_listens=self.listens(route.extras.proxy, https=True) if self.https_listen else [],
            proxy=route.extras.proxy,
            tls=tls,
            covered=covered,
            redirect=covered if tls and tls.redirect else [],
            plain=plain if tls and tls.redirect else route.hostnames,
            https_listen=self.https_listen,
            https_suffix=self.https_suffix,
            acme_root=route.extras.acme_root,
            acme_path=ACME_CHALLENGE,
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
        if not self.dhparam_path.exists() or self.dhparam_path.read_text() != FFDHE2048:
            self._write_atomic(self.dhparam_path, FFDHE2048)
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

    def _candidate(self, changes: dict[str, str | None]) -> dict[str, str]:
        """Every app file as it would be with `changes` applied (None removes)."""
        files = {f.name: f.read_text() for f in self.apps_dir.glob("*.conf")}
        for name, text in changes.items():
            if text is None:
                files.pop(f"{name}.conf", None)
            else:
                files[f"{name}.conf"] = text
        return files

    def _fingerprint(self, files: dict[str, str]) -> str:
        """What `nginx -t` of a candidate reads: the main config and every app file."""
        h = hashlib.sha256(self.render_main(Path("/@apps"), Path("/@pid")).encode())
        for name in sorted(files):
            h.update(f"\0{name}\0{len(files[name])}\0{files[name]}".encode())
        return h.hexdigest()

    def precheck_route(self, route: Route) -> None:
        """`nginx -t` of the config `set_route(route)` would make, ahead of it (no lock, nothing
        changes): that set_route skips its own check if no file changed meanwhile."""
        self.ensure_layout()
        self._check_candidate({route.app: self.render_app(route) if route.serves else None})

    def _check_candidate(self, changes: dict[str, str | None]) -> None:
        """`nginx -t` on a staging copy: current app files with `changes` applied (None removes).
        Skipped when this very config passed it moments ago (precheck_route); one use only."""
        files = self._candidate(changes)
        fingerprint = self._fingerprint(files)
        ahead, self._prechecked = self._prechecked, None
        if ahead is not None and ahead[0] == fingerprint and time.monotonic() - ahead[1] < PRECHECK_TTL:
            return
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=self.conf_dir))
        try:
            apps = staging / "apps"
            apps.mkdir()
            # The changed files are written here; the others are included where they are (one
            # line each): copying every app's file cost more than nginx -t itself with 200 apps.
            changed = {f"{name}.conf" for name in changes}
            for name in changed & set(files):
                (apps / name).write_text(files[name])
            kept = [self.apps_dir / name for name in sorted(set(files) - changed)]
            (apps / "~kept.conf").write_text("".join(f"include {path};\n" for path in kept))
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
        self._prechecked = (fingerprint, time.monotonic())

    # changes
    def set_route(self, route: Route) -> None:
        """Serve `route`; a route that serves nothing (no upstreams, no plugin answer) is removed."""
        self.ensure_layout()
        self._install(route.app, self.render_app(route) if route.serves else None)

    def set_dashboard(
        self,
        hostname: str,
        upstream: str | None,
        tls: RouteTls | None = None,
        acme_root: str | None = None,
        streams: str | None = None,
    ) -> None:
        """Route `paas.<domain>` to the dashboard's gunicorn (live streams to `streams`, the
        evented one); None removes the route. With `tls` it is served over HTTPS with its own
        certificate and plain HTTP redirects there; `acme_root` answers HTTP-01 challenges."""
        self.ensure_layout()
        text = None
        tls = tls if self.https_listen else None
        if upstream is not None and (tls is not None or acme_root is not None):
            text = _env.get_template("dashboard_tls.conf.j2").render(
                hostname=hostname,
                upstream=upstream,
                listen=self.listen,
                https_listen=self.https_listen,
                https_suffix=self.https_suffix,
                tls=tls,
                acme_root=acme_root,
                acme_path=ACME_CHALLENGE,
                streams=streams,
            )
        elif upstream is not None:
            text = _env.get_template("dashboard.conf.j2").render(
                hostname=hostname,
                upstream=upstream,
                listen=self.listen,
                streams=streams,
            )
        self._install(DASHBOARD, text)

    def dashboard_upstream(self) -> tuple[str | None, str | None]:
        """Where the routed dashboard's gunicorns are (pages, streams; from its config), so that
        a certificate change made in another process can re-render the dashboard's blocks."""
        path = self.apps_dir / f"{DASHBOARD}.conf"
        try:
            text = path.read_text()
        except OSError:
            return None, None
        pages = re.search(r"proxy_pass http://([^;]+);", text)
        streams = re.search(r"proxy_pass http://([^;]+); # streams", text)
        return (pages.group(1) if pages else None), (streams.group(1) if streams else None)

    def file_state(self, name: str) -> tuple[int, int, int] | None:
        """`apps/<name>.conf` as the kernel sees it (inode, size, change time: ctime, which no
        tool can set back), None when there is none: a reconcile pass tells a file someone
        changed by hand from the one it left, without rendering the route again."""
        try:
            st = os.stat(f"{self.apps_dir}/{name}.conf")
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_ctime_ns

    def set_routes(self, routes: Sequence[Route]) -> None:
        """Serve every route of `routes` with one `nginx -t` and one reload: each check and
        reload reads every app's file, so routing N apps one by one costs N times N (after a
        dockerd restart every app's addresses change at once)."""
        self.ensure_layout()
        self._install_many({r.app: self.render_app(r) if r.serves else None for r in routes})

    def _install(self, name: str, text: str | None) -> None:
        """Check `apps/<name>.conf` with nginx -t, then put it in place (None: remove) and reload."""
        self._install_many({name: text})

    def _install_many(self, texts: dict[str, str | None]) -> None:
        """Check the app files with nginx -t, put them in place (None: remove) and reload once;
        if the reload fails, every file goes back to what it was."""
        with self._lock():
            before: dict[str, str | None] = {}
            for name, text in texts.items():
                target = self.apps_dir / f"{name}.conf"
                current = target.read_text() if target.exists() else None
                if current != text:
                    before[name] = current
            if not before:
                return
            changes = {name: texts[name] for name in before}
            self._check_candidate(changes)
            self._put(changes)
            try:
                self.reload()
            except PaasError:
                self._put(before)  # the files on disk match what serves
                raise

    def _put(self, texts: dict[str, str | None]) -> None:
        for name, text in texts.items():
            target = self.apps_dir / f"{name}.conf"
            if text is None:
                target.unlink(missing_ok=True)
            else:
                self._write_atomic(target, text)

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
