"""What the router costs: requests/s and p50/p99 with `wrk` (keep-alive), in the same run,
straight to the app's container, through nginx over HTTP, and through nginx over HTTPS
(HTTP/1.1 over TLS 1.3 with the app's certificate, SNI `localhost`).

Fair by construction: the same wrk (one thread, the same connections and seconds) for each;
"direct" talks to the container's own address, where the router sends its requests, and sends
the headers the router adds (X-Forwarded-*, X-Real-IP, X-Request-Start), so the app does the
same work per request on both paths. Every path runs --rounds times in turn and shows its
medians (the machine is shared); a ratio is the median of each round's own (a path against the
direct run of the same round, a minute apart at most), with its range. Shown, not counted: the
published loopback port (docker's NAT with its userland proxy off, as bootstrap.sh sets it;
docker-proxy when on, which costs more CPU per request than nginx). Each row also shows CPU
microseconds per request of wrk itself, the router's workers and the app's container: on 2
cores all three share the CPU, so a path's requests/s falls with the sum.

Starts a `paas server` on loopback high ports, deploys a small app (Python's http.server),
gives it the name `localhost` and a self-signed certificate, then runs wrk against the three.
Targets: HTTP >= 0.9x direct, HTTPS >= 0.8x direct, <= 0.3 ms added at p50. Not a test: it
prints figures.

With --floor, the same nginx also answers by itself (`return 200`, no app behind it) over HTTP
and HTTPS, each on a port of its own: its CPU per request is the router's floor on this box,
whatever the app; and HTTPS floors each with one TLS change (`ssl_buffer_size 4k`, TLS 1.3 with
AES-128-GCM, with ChaCha20) show what that change does to nginx's own cost per request.

Then a route change: the managed nginx (paas.router.nginx.Router, its own prefix) routes --apps
apps to a loopback backend; one app's route moves to another backend, and the clock runs from
`set_route` until a request through nginx is answered by the new backend (nginx -t, the atomic
write, the reload, and the wait for the old workers). Baseline, same run: the same change when it
routes a single app. Target: <= 1 s with 100 apps (`--route-change-only` skips the wrk part).

    PAAS_BUILD_CA_BUNDLE=... .venv/bin/python bench/router.py [--seconds 10] [--connections 4]
        [--apps 100] [--changes 5] [--route-change-only]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
from docker.models.containers import Container

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paas.core import names  # noqa: E402
from paas.core.routes import Route  # noqa: E402
from paas.router.nginx import Router  # noqa: E402
from paas.scheduler.docker_local import host_port  # noqa: E402
from paas.settings import Settings  # noqa: E402
from tests.e2e.conftest import free_port, unique_app  # noqa: E402
from tests.e2e.test_https import deploy_echo, https_server, ok  # noqa: E402

WRK = "/usr/bin/wrk"  # Debian's package
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"cannot read wrk's latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU seconds of the router's workers and the app's container, read around each wrk run, so
    that each path's cost shows per request and per part (wrk's own, the router's, the app's):
    on a shared 2-core machine that is steadier than requests/s, and says where the time goes."""

    nginx_master: int | None = None
    container_id: str | None = None

    def router(self) -> float:
        if self.nginx_master is None:
            return 0.0
        total = 0.0
        for child in Path(f"/proc/{self.nginx_master}/task/{self.nginx_master}/children").read_text().split():
            try:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # a worker that just left
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        return total

    def app(self) -> float:
        """The container's cgroup: cgroup v1 (these machines) or v2 under systemd."""
        if not self.container_id:
            return 0.0
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{self.container_id}/cpuacct.usage")
        if v1.exists():
            return int(v1.read_text()) * 1e-9
        v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{self.container_id}.scope/cpu.stat")
        if v2.exists():
            return int(v2.read_text().split("usage_usec ", 1)[1].split()[0]) * 1e-6
        return 0.0

    def read(self) -> tuple[float, float, float]:
        me = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime, self.router(), self.app()


METER = CpuMeter()


def wrk(url: str, seconds: int, connections: int, headers: dict[str, str] | None = None) -> dict[str, float]:
    args = [WRK, "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", url]
    for name, value in (headers or {}).items():
        args[1:1] = ["-H", f"{name}: {value}"]
    before = METER.read()
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    after = METER.read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        raise SystemExit(f"wrk saw errors on {url}:\n{out}")
    done = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    wrk_us, router_us, app_us = ((b - a) / done * 1e6 for a, b in zip(before, after, strict=True))
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "wrk_us": wrk_us,
        "router_us": router_us,
        "app_us": app_us,
        "requests": done,
    }


# The same nginx answering by itself (`return 200`, no proxying): its own floor per request on
# this box, which does not depend on the app. Each floor listens on a port of its own (no SNI
# name to resolve); the HTTPS floors use the app's certificate and the router's TLS settings
# (http level), one of them unchanged and each other with one TLS change to try.
FLOOR_VARIANTS = {
    "https": "",
    "https ssl_buffer_size 4k": "ssl_buffer_size 4k;",
    "https aes-128-gcm": "ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;",
    "https chacha20": "ssl_conf_command Ciphersuites TLS_CHACHA20_POLY1305_SHA256;",
}
FLOOR_FILE = "zz-bench-floor.conf"  # no app has this name: nothing else writes or removes it


def floor_servers(app_conf: str) -> tuple[str, dict[str, int]]:
    """The floor's server blocks (taking the app's certificate from its config) and the port of
    each: "http", then every FLOOR_VARIANTS key."""
    cert = re.search(r"ssl_certificate (\S+);", app_conf).group(1)  # type: ignore[union-attr]
    key = re.search(r"ssl_certificate_key (\S+);", app_conf).group(1)  # type: ignore[union-attr]
    answer = 'location / { default_type text/plain; return 200 "ok\\n"; }'
    ports = {"http": free_port()}
    blocks = [f"server {{ listen 127.0.0.1:{ports['http']}; access_log off; {answer} }}"]
    for name, extra in FLOOR_VARIANTS.items():
        ports[name] = free_port()
        blocks.append(
            f"server {{ listen 127.0.0.1:{ports[name]} ssl; access_log off; ssl_certificate {cert};"
            f" ssl_certificate_key {key}; {extra} {answer} }}"
        )
    return "\n".join(blocks) + "\n", ports


def backend(name: str) -> ThreadingHTTPServer:
    """A loopback HTTP server that answers every GET with its name."""

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def answer(port: int, host: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Host": host})
        return conn.getresponse().read().decode()
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        conn.close()


def route_change(root: Path, apps: int, changes: int) -> tuple[list[float], list[float]]:
    """Seconds from set_route until the new backend answers, for `changes` moves of one app's
    route while nginx routes `apps` apps: (until set_route returned, until live)."""
    env = {
        "PAAS_DATA_DIR": str(root / "data"),
        "PAAS_HTTP_PORT": str(free_port()),
        "PAAS_HTTP_BIND": "127.0.0.1",
        "PAAS_HTTPS_PORT": str(free_port()),
        "PAAS_HTTPS_BIND": "127.0.0.1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = Settings.from_env()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    settings.ensure_dirs()
    backends = {name: backend(name) for name in ("a", "b")}
    upstream = {name: f"127.0.0.1:{b.server_address[1]}" for name, b in backends.items()}
    router = Router(settings)
    router.start()
    try:
        names = [f"app{i:03d}" for i in range(apps)]
        for name in names:
            router.set_route(Route(name, [f"{name}.bench.test"], [upstream["a"]]))
        target = names[len(names) // 2]
        host = f"{target}.bench.test"
        returned, live = [], []
        for i in range(changes):
            new = "b" if i % 2 == 0 else "a"
            t0 = time.monotonic()
            router.set_route(Route(target, [host], [upstream[new]]))
            returned.append(time.monotonic() - t0)
            while answer(settings.http_port, host) != new:
                if time.monotonic() - t0 > 30:
                    raise SystemExit(f"the route of {target} never moved to backend {new}")
                time.sleep(0.005)
            live.append(time.monotonic() - t0)
        return returned, live
    finally:
        router.stop()
        for b in backends.values():
            b.shutdown()


def route_change_bench(apps: int, changes: int) -> None:
    figures = {}
    for count in (1, apps):
        root = Path(tempfile.mkdtemp(prefix="paas-bench-route-"))
        root.chmod(0o755)
        try:
            figures[count] = route_change(root, count, changes)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\nroute change of one app ({changes} changes; seconds, median / max)")
    print(f"{'apps routed':<14}{'set_route':>18}{'live':>18}")
    for count, (returned, live) in figures.items():
        print(
            f"{count:<14}{statistics.median(returned):>10.3f} / {max(returned):.3f}"
            f"{statistics.median(live):>10.3f} / {max(live):.3f}"
        )
    live_many, live_one = statistics.median(figures[apps][1]), statistics.median(figures[1][1])
    print(f"target: <= 1 s live with {apps} apps: {'met' if max(figures[apps][1]) <= 1 else 'NOT met'}")
    print(f"route change ratio ({apps} apps / 1 app): {live_many / live_one:.2f}")


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def web_container(app: str) -> Container | None:
    """The app's web container: its cgroup is metered, its published loopback port shown."""
    client = docker.from_env()
    try:
        for c in client.containers.list(filters={"label": f"{names.LABEL_APP}={app}"}):
            if c.labels.get(names.LABEL_TYPE) == "web":
                return c
    finally:
        client.close()
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each path; medians are shown")
    parser.add_argument("--apps", type=int, default=100, help="apps routed during the route change")
    parser.add_argument("--changes", type=int, default=5, help="route changes to time")
    parser.add_argument("--route-change-only", action="store_true", help="skip the wrk figures")
    parser.add_argument(
        "--floor", action="store_true", help="also nginx answering by itself, and TLS changes tried on it"
    )
    opts = parser.parse_args()
    if opts.route_change_only:
        route_change_bench(opts.apps, opts.changes)
        return 0
    root = Path(tempfile.mkdtemp(prefix="paas-bench-router-"))
    root.chmod(0o755)
    try:
        with https_server(root, {"PAAS_DOMAIN": "bench.test"}) as server:
            app = unique_app("bench")
            deploy_echo(server, app)
            ok(server.ssh("domains:add", app, "localhost"))
            ok(server.ssh("certs:generate", app))
            ok(server.ssh("certs:redirect", app, "off"))
            conf = (server.data_dir / "nginx" / "conf" / "apps" / f"{app}.conf").read_text()
            upstream = re.search(r"server (\S+) max_fails", conf).group(1)  # type: ignore[union-attr]
            web = web_container(app)
            published = host_port(web) if web else None
            METER.nginx_master = Router(Settings(data_dir=server.data_dir)).running_pid()
            METER.container_id = web.id if web else None
            secs, conns = opts.seconds, opts.connections
            # what nginx sends the app (app.conf.j2), so that the app's work per request is the same
            routed_headers = {
                "Host": "localhost",
                "X-Real-IP": "127.0.0.1",
                "X-Forwarded-For": "127.0.0.1",
                "X-Forwarded-Proto": "http",
                "X-Forwarded-Port": str(server.http_port),
                "X-Request-Start": f"t={time.time():.3f}",
            }
            paths = {
                "direct": (f"http://{upstream}/", routed_headers),
                "router http": (f"http://127.0.0.1:{server.http_port}/", {"Host": "localhost"}),
                "router https": (f"https://localhost:{server.https_port}/", {}),
            }
            if published:
                paths["(published)"] = (f"http://127.0.0.1:{published}/", routed_headers)
            if opts.floor:
                router = Router(Settings(data_dir=server.data_dir))
                text, ports = floor_servers(conf)
                (router.apps_dir / FLOOR_FILE).write_text(text)
                router.reload()
                for name, port in ports.items():
                    scheme = "http" if name == "http" else "https"
                    paths[f"floor {name}"] = (f"{scheme}://127.0.0.1:{port}/", {})
            # Rounds of every path in turn, each path's median: the machine is shared, and a
            # neighbour's burst lands in one round of one path, not in the comparison.
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
            for _ in range(opts.rounds):
                for name, (url, headers) in paths.items():
                    rounds[name].append(wrk(url, secs, conns, headers))
            runs = {name: medians(rs) for name, rs in rounds.items()}
            # each round against the direct run of the same round: slow drifts of the shared
            # machine (and of the app's own speed) cancel out
            ratios = {
                n: [r["rps"] / d["rps"] for r, d in zip(rs, rounds["direct"], strict=True)]
                for n, rs in rounds.items()
            }
            added = {
                n: statistics.median(r["p50"] - d["p50"] for r, d in zip(rs, rounds["direct"], strict=True))
                for n, rs in rounds.items()
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"wrk -t1 -c{opts.connections} -d{opts.seconds}s, keep-alive, {opts.connections} connections;"
        f" medians of {opts.rounds} rounds"
    )
    print(f"{'':<32}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}{'(range)':>13}{'+p50 ms':>9}"
          f"   CPU us/request: {'wrk':>5}{'router':>7}{'app':>6}")  # fmt: skip
    ratio = {n: statistics.median(rs) for n, rs in ratios.items()}
    for name, r in runs.items():
        spread = f"({min(ratios[name]):.2f}-{max(ratios[name]):.2f})"
        print(
            f"{name:<32}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{ratio[name]:>7.2f}x{spread:>13}"
            f"{added[name]:>9.2f}{'':>18}{r['wrk_us']:>5.0f}{r['router_us']:>7.0f}{r['app_us']:>6.0f}"
        )
    print(
        f"targets: HTTP >= 0.9x ({ratio['router http']:.2f}x), HTTPS >= 0.8x "
        f"({ratio['router https']:.2f}x), <= 0.3 ms added at p50 "
        f"(HTTP {added['router http']:+.2f}, HTTPS {added['router https']:+.2f})"
    )
    route_change_bench(opts.apps, opts.changes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
