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
round's own: the two runs of a round are back to back, so a busy neighbour's drift mostly
cancels), and the router workers' CPU microseconds per request. The server's CPU for counting:
its CPU over the whole run (plus 7 s for the last lines to be counted) less what it spends idle
(measured first, 20 s without traffic), per 1,000 requests sent with metrics on. Finally the
requests the history counted against the ones wrk sent in the "on" runs (wrk does not count the
few still in flight when it stops).
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
IDLE_SECONDS = 20.0
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
        assert server.proc is not None
        pid = server.proc.pid
        router.set_route(route(True))
        time.sleep(COUNT_WAIT)  # the deploy's lines counted, the reader idle
        idle0, t0 = process_cpu(pid), time.monotonic()
        time.sleep(IDLE_SECONDS)
        idle_rate = (process_cpu(pid) - idle0) / (time.monotonic() - t0)
        rounds: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        before = json.loads(server.ssh("metrics", app, "--format", "json").stdout)["requests"]["requests"]
        cpu0, t0 = process_cpu(pid), time.monotonic()
        for _ in range(opts.rounds):
            for mode in ("off", "on"):
                router.set_route(route(mode == "on"))
                rounds[mode].append(wrk(url, opts.seconds, opts.connections, {"Host": host}))
        time.sleep(COUNT_WAIT)
        busy = process_cpu(pid) - cpu0 - idle_rate * (time.monotonic() - t0)
        sent_on = int(sum(r["requests"] for r in rounds["on"]))
        counting_ms = busy * 1000 / sent_on * 1000
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
    print(f"{'metrics':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'router us/req':>15}")
    for mode, r in med.items():
        print(f"{mode:<9}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['router_us']:>15.1f}")
    ratio = statistics.median(ratios)
    print(f"on/off throughput: {ratio:.3f}x (rounds {min(ratios):.3f}-{max(ratios):.3f}); target >= 0.95x: "
          f"{'met' if ratio >= 0.95 else 'NOT met'}")  # fmt: skip
    print(
        f"server CPU for counting: {counting_ms:.1f} ms per 1,000 requests"
        f" (idle: {idle_rate * 1000:.1f} ms per second, taken off)"
    )
    total = counted["requests"]["requests"] - before
    print(f"counted by the history: {total} requests (wrk sent {sent_on} with metrics on)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
