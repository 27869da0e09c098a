"""Server-side latency of the dashboard: the apps page and one app page, with 100 apps; then
the apps page and the API's app list with no live log streams open and with 100 open.

Seeds a store in a temporary data dir (100 apps, each with a build, 3 releases, 8 config vars,
a domain and some events), starts labelled containers for some of them on the real dockerd
(`sleep` in the stack image, so the pages have real processes to list), runs the dashboard's
gunicorns and the managed nginx as `paas server` would, logs in, and times sequential GETs over
loopback through nginx (paced under the API's rate limit). Targets: p95 <= 200 ms for the
pages; with 100 streams open, p95 <= 200 ms and <= 2x the stream-free p95. Not a test: it
prints figures.

    .venv/bin/python bench/dashboard.py [--apps 100] [--containers 30] [--rounds 200] [--streams 100]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paas.buildpacks.stack import DEFAULT_STACK  # noqa: E402
from paas.core import names  # noqa: E402
from paas.core.context import Context  # noqa: E402
from paas.router.nginx import Router  # noqa: E402
from paas.services import users  # noqa: E402
from paas.settings import Settings  # noqa: E402
from paas.web.process import DashboardProcess  # noqa: E402
from tests.e2e.conftest import free_port  # noqa: E402

PASSWORD = "bench password"


def seed(ctx: Context, apps: int) -> list[str]:
    names = []
    for i in range(apps):
        name = f"app-{i:03d}"
        app = ctx.store.create_app(name)
        build = ctx.store.create_build(app.id, uuid.uuid4().hex * 1, "alice")
        ctx.store.finish_build(
            build, "succeeded", "-----> built\n" * 50, None, {"web": "x", "worker": "y"}, "python"
        )
        config = {f"KEY_{k}": f"value {k} of {name}" for k in range(8)}
        for v in range(3):
            r = ctx.store.create_release(
                app.id, build, config, {"web": 1, "worker": 0}, f"Deploy {v}", "alice"
            )
            ctx.store.set_release_status(r.id, "succeeded")
        ctx.store.replace_config(app.id, config)
        ctx.store.set_formation(app.id, {"web": 1, "worker": 0})
        ctx.store.replace_domains(app.id, [f"www.{name}.example"])
        for n in range(5):
            ctx.store.add_event(name, "alice", "config", f"Set KEY_{n}")
        names.append(name)
    return names


def start_containers(ctx: Context, apps: list[str]) -> list:
    client = ctx.docker
    out = []
    for name in apps:
        labels = {
            names.LABEL_APP: name,
            names.LABEL_RELEASE: "3",
            names.LABEL_TYPE: "web",
            names.LABEL_INDEX: "1",
            names.LABEL_ROLE: "process",
            names.LABEL_INSTANCE: ctx.settings.instance_id,
            names.LABEL_PORT: "5000",
        }
        out.append(
            client.containers.run(
                DEFAULT_STACK.image,
                ["sleep", "3600"],
                detach=True,
                labels=labels,
                name=f"paas-bench-{name}-{uuid.uuid4().hex[:6]}",
            )
        )
    return out


class Browser:
    """Just enough of one: a cookie jar and the login form's CSRF token."""

    def __init__(self, port: int, host: str, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookie = ""
        self.host = host
        self.token = token

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        headers = {"Host": self.host}
        if self.cookie:
            headers["Cookie"] = self.cookie
        if path.startswith("/api/"):
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body, headers)
            resp = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # nginx closed the idle keep-alive connection (its keepalive_timeout passed while a
            # bench sat idle): a browser opens a new one
            self.conn.close()
            self.conn.request(method, path, body, headers)
            resp = self.conn.getresponse()
        text = resp.read().decode()
        cookie = resp.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return resp.status, text

    def login(self, user: str = "alice") -> None:
        from urllib.parse import urlencode

        _, page = self.request("GET", "/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        form = urlencode({"username": user, "password": PASSWORD, "csrf_token": token, "next": "/"})
        status, _ = self.request("POST", "/login", form)
        assert status == 303, status


PACE = 1 / 30  # seconds per request at most 30 a second: nginx limits the API to 50/s per address


def timed(browser: Browser, path: str, rounds: int) -> list[float]:
    for _ in range(10):  # warm up: imports, template compilation, connection pools
        browser.request("GET", path)
        time.sleep(PACE)
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        status, _ = browser.request("GET", path)
        took = time.perf_counter() - start
        out.append(took * 1000)
        assert status == 200, (path, status)
        time.sleep(max(0.0, PACE - took))
    return out


def open_stream(port: int, host: str, cookie: str, app: str) -> socket.socket:
    """One browser tab's live log stream (EventSource) through nginx, held open."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(
        f"GET /apps/{app}/logs/stream HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    head = b""
    while b"retry:" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError(f"stream of {app} closed: {head[:200]!r}")
        head += chunk
    return s


def report(label: str, ms: list[float]) -> None:
    q = statistics.quantiles(ms, n=100)  # q[49] is the median, q[94] the 95th percentile
    print(
        f"{label:<28} p50 {q[49]:6.1f} ms  p95 {q[94]:6.1f} ms  max {max(ms):6.1f} ms  ({len(ms)} requests)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--containers", type=int, default=30, help="apps that get a running web container")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--streams", type=int, default=100, help="live log streams held open")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="paas-bench-"))
    port, http_port = free_port(), free_port()
    os.environ.update(
        {
            "PAAS_DATA_DIR": str(data),
            "PAAS_WEB_PORT": str(port),
            "PAAS_WEB_BIND": "127.0.0.1",
            "PAAS_HTTP_PORT": str(http_port),
            "PAAS_HTTP_BIND": "127.0.0.1",
        }
    )
    settings = Settings.from_env()
    settings.ensure_dirs()
    ctx = Context.open(settings, actor="host", is_admin=True)
    users.add_user(ctx, "alice", PASSWORD, admin=True)
    _, token = users.create_token(ctx, "alice")
    names = seed(ctx, args.apps)
    containers = start_containers(ctx, names[: args.containers])
    web = DashboardProcess(settings)
    router = Router(settings)
    streams: list[socket.socket] = []
    try:
        router.start()
        web.start()
        web.wait_ready()
        router.set_dashboard(settings.dashboard_host, web.upstream, streams=web.streams_upstream)
        browser = Browser(http_port, settings.dashboard_host, token)
        browser.login()
        one = names[min(7, len(names) - 1)]
        print(
            f"{args.apps} apps, {len(containers)} running containers, gunicorn gthread "
            f"{settings.web_workers}x{settings.web_threads} (+ gevent for streams), sequential requests"
            " over loopback through nginx"
        )
        page = timed(browser, "/", args.rounds)
        report("apps page  /", page)
        report(f"app page   /apps/{one}", timed(browser, f"/apps/{one}", args.rounds))
        api = timed(browser, "/api/v1/apps", args.rounds)
        report("API        /api/v1/apps", api)
        for i in range(args.streams):
            streams.append(
                open_stream(http_port, settings.dashboard_host, browser.cookie, names[i % len(names)])
            )
        time.sleep(2)
        print(f"with {len(streams)} live log streams open:")
        page_s = timed(browser, "/", args.rounds)
        report("apps page  / (streams)", page_s)
        api_s = timed(browser, "/api/v1/apps", args.rounds)
        report("API        /api/v1/apps (streams)", api_s)
        alive = 0
        for s in streams:
            s.setblocking(False)
            try:
                alive += s.recv(65536, socket.MSG_PEEK) != b""
            except BlockingIOError:
                alive += 1
        print(f"streams still open afterwards: {alive}/{len(streams)}")
        p95 = lambda ms: statistics.quantiles(ms, n=100)[94]  # noqa: E731
        print(
            f"p95 ratio with/without streams: apps page {p95(page_s) / p95(page):.2f}x,"
            f" API {p95(api_s) / p95(api):.2f}x (target <= 2x and p95 <= 200 ms)"
        )
    finally:
        for s in streams:
            s.close()
        web.stop()
        router.stop()
        for c in containers:
            c.remove(force=True)


if __name__ == "__main__":
    main()
