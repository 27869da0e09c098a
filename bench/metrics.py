"""What request metrics cost: the router's throughput with its metrics log on and off, in the same
run, and the `paas server` CPU spent counting them (per 1,000 requests).

Starts a `paas server` on loopback high ports (its reconcile loop slowed down, so it does not
put the route back while the bench flips it), deploys the static-site app (nginx inside the
container: a fast upstream, so the router's own cost shows), then runs `wrk` (keep-alive)
through the router in rounds, each round once with the app's route rendered without the metrics
lines ("off": only the combined access log, as before the metrics plugin) and once with them
("on": the map, the tagged log line the server reads). Both are the real Router rendering the
real route; only `RouteExtras.metrics_log` differs.

Per mode: requests/s and p50/p99 (medians of the rounds), the ratio on/off (median of each
round's own), the router workers' CPU microseconds per request, and the server process's CPU
milliseconds per 1,000 requests (read after the server had time to count the round's lines: 7 s).
Finally the requests the history counted against the ones wrk sent in the "on" rounds.
Target: under 5% of throughput lost with metrics on.

    PAAS_BUILD_CA_BUNDLE=... .venv/bin/python bench/metrics.py [--seconds 8] [--rounds 5] [--connections 4]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.router import METER, wrk  # noqa: E402
from paas.core.routes import Route, RouteExtras  # noqa: E402
from paas.router.nginx import Router  # noqa: E402
from paas.settings import Settings  # noqa: E402
from tests.e2e.conftest import PaasServer, shutdown  # noqa: E402

COUNT_WAIT = 7.0  # the router flushes its log every second, the server adds counts every 5 s
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def settings_of(server: PaasServer) -> Settings:
    """The server's own settings (the main config must render the same, or the router rewrites it)."""
    saved = dict(os.environ)
    os.environ.update(server.env)
    try:
        return Settings.from_env()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=4)
    opts = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="paas-bench-metrics-"))
    root.chmod(0o755)
    server = PaasServer(root)
    server.env["PAAS_RECONCILE_SECONDS"] = "100000"  # the bench owns the route meanwhile
    try:
        server.start_with_key()
        app = server.deploy_new_app("static-site", "mbench")
        settings = settings_of(server)
        conf = (settings.nginx_dir / "conf" / "apps" / f"{app}.conf").read_text()
        upstream = re.search(r"server (\S+) max_fails", conf).group(1)  # type: ignore[union-attr]
        router = Router(settings)
        METER.nginx_master = router.running_pid()
        host = f"{app}.{settings.domain}"

        def route(on: bool) -> Route:
            extras = RouteExtras()
            if on:
                extras.set_metrics_log(str(settings.metrics_log_path))
            return Route(app, [host], [upstream], extras, {upstream: 1})

        url = f"http://127.0.0.1:{settings.http_port}/"
        rounds: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        sent_on = 0
        assert server.proc is not None
        for _ in range(opts.rounds):
            for mode in ("off", "on"):
                router.set_route(route(mode == "on"))
                cpu0 = process_cpu(server.proc.pid)
                run = wrk(url, opts.seconds, opts.connections, {"Host": host})
                time.sleep(COUNT_WAIT)
                done = run["requests"]
                run["server_ms_per_1000"] = (process_cpu(server.proc.pid) - cpu0) * 1000 / done * 1000
                rounds[mode].append(run)
                if mode == "on":
                    sent_on += int(done)
        router.set_route(route(True))
        time.sleep(COUNT_WAIT)
        counted = json.loads(server.ssh("metrics", app, "--since", "1h", "--format", "json").stdout)
    finally:
        shutdown(server)
        shutil.rmtree(root, ignore_errors=True)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in rounds.items()}
    ratios = [on["rps"] / off["rps"] for on, off in zip(rounds["on"], rounds["off"], strict=True)]
    print(
        f"wrk -t1 -c{opts.connections} -d{opts.seconds}s through the router to the static-site app"
        f" (nginx in its container); medians of {opts.rounds} rounds, off and on in turn"
    )
    print(
        f"{'metrics':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'router us/req':>15}{'server ms/1000 req':>20}"
    )
    for mode, r in med.items():
        print(
            f"{mode:<9}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['router_us']:>15.1f}"
            f"{r['server_ms_per_1000']:>20.1f}"
        )
    ratio = statistics.median(ratios)
    print(f"on/off throughput: {ratio:.3f}x (rounds {min(ratios):.3f}-{max(ratios):.3f}); target >= 0.95x: "
          f"{'met' if ratio >= 0.95 else 'NOT met'}")  # fmt: skip
    extra = med["on"]["server_ms_per_1000"] - med["off"]["server_ms_per_1000"]
    print(f"server CPU for counting: {extra:.1f} ms per 1,000 requests (on minus off)")
    total = counted["requests"]["requests"]
    print(f"counted by the history: {total} requests (wrk sent {sent_on} with metrics on)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
