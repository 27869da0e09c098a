"""What request metrics cost: the router's throughput with its metrics log on and off, in the same
run, and the CPU spent on it per 1,000 requests: the router's workers (nginx) and `paas server`'s
collector (reading and counting the lines).

Starts a `paas server` on loopback high ports (its reconcile loop slowed down, so it does not
put the route back while the bench flips it), deploys the static-site app (nginx inside the
container: a fast upstream, so the router's own cost shows), then runs `wrk` (keep-alive)
through the router in short rounds that alternate: the app's route rendered without the metrics
lines ("off": only the combined access log, as before the metrics plugin) and with them ("on":
the map, the tagged log line the server reads). Both are the real Router rendering the real
route; only `RouteExtras.metrics_log` differs. The machine is shared and its CPU speed swings
within seconds, so many short pairs, each pair's order flipped from the one before (off-on,
on-off, ...; with variants the order rotates), and each pair's own ratio on/off: the figure is
the median of those, with its quartiles and range. `--variant NAME` adds a bench-only change of
the "on" config to every pair (a candidate for the product, measured against off and on in the
same run; see VARIANTS).

CPU, per mode, microseconds per request (= ms per 1,000 requests): wrk's own, the router's
workers (nginx), the app's container, and `paas server`'s over each run plus --settle seconds
after it (the router flushes its log every second, the collector reads it every second); the
server's figure is its CPU less its same-run idle (its CPU per second in the runs without the
log), so in the "on" runs it is the counting's cost. `all` is their sum, and `cpu ratio` the
median of each pair's all-off / all-this-mode: the throughput ratio the CPU alone would give if
the 2 cores were the bench's. As a slowed CPU bills more microseconds for the same work, nginx's
CPU is also shown against the app's in the same run (the app does the same work in every mode).
A column `speed` is a fixed loop's pace in this process just before each run of the pair (1.00 =
the run's fastest): how much the CPU the bench got moved. Last, the history's count against the
requests wrk sent, and the collector's parsing alone (`count()` over the run's metrics log, in
this process).
Target: under 5% of throughput lost with metrics on.

    PAAS_BUILD_CA_BUNDLE=... .venv/bin/python bench/metrics.py [--pairs 12] [--seconds 3]
        [--connections 4] [--settle 2] [--variant NAME ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.router import METER, web_container, wrk  # noqa: E402
from paas.core.routes import Route, RouteExtras  # noqa: E402
from paas.router.nginx import Router  # noqa: E402
from paas.settings import Settings  # noqa: E402
from plugins.metrics.collector import count  # noqa: E402
from tests.e2e.conftest import PaasServer, shutdown  # noqa: E402

COUNT_WAIT = 7.0  # the router flushes its log every second, the server adds counts every 5 s
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Bench-only changes of the rendered "on" config (candidates, measured in the same run).
VARIANTS: dict[str, Callable[[str], str]] = {
    # what the second log costs alone: the metrics line without the combined one
    "no-combined": lambda conf: re.sub(r"\n\s*access_log \S+ combined [^;]*;", "", conf),
    # the release map out of the line (a constant instead of the lookup)
    "no-map": lambda conf: re.sub(r"^(log_format .*?)\$paas_release_\w+", r"\1-", conf, flags=re.M),
    # unbuffered metrics log: a write per request (what the buffer saves)
    "unbuffered": lambda conf: re.sub(r"(access_log \S+ paas_metrics_\w+) [^;]*;", r"\1;", conf),
}


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


def speed_probe() -> float:
    """Loops per second of a fixed pure-Python loop (~20 ms): how fast the CPU runs right now."""
    t0 = time.perf_counter()
    x = 0
    for i in range(200_000):
        x += i
    return 200_000 / (time.perf_counter() - t0)


def count_at(rev: str, into: Path) -> Callable[[list[str], dict, float], int]:
    """The collector's count() as it was at git revision `rev` (the plugin's package unpacked
    under `into` and imported under a name of its own)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "plugins/metrics"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    name = f"metrics_at_{re.sub(r'[^A-Za-z0-9]', '_', rev)}"
    spec = importlib.util.spec_from_file_location(
        name, into / "plugins" / "metrics" / "__init__.py", submodule_search_locations=[]
    )
    assert spec is not None and spec.loader is not None
    spec.submodule_search_locations = [str(into / "plugins" / "metrics")]  # type: ignore[union-attr]
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{name}.collector").count


def time_count(fn: Callable[[list[str], dict, float], int], lines: list[str]) -> float:
    """CPU microseconds per line of one count() over `lines`."""
    t0 = time.process_time()
    counted = fn(lines, {}, 0.0)
    return (time.process_time() - t0) * 1e6 / max(counted, 1)


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after each run, its CPU counted")
    parser.add_argument("--variant", action="append", default=[], choices=sorted(VARIANTS))
    parser.add_argument("--count-against", metavar="REV", help="time count() of this git revision too")
    opts = parser.parse_args()
    modes = ["off", "on", *opts.variant]
    root = Path(tempfile.mkdtemp(prefix="paas-bench-metrics-"))
    root.chmod(0o755)
    server = PaasServer(root)
    server.env["PAAS_RECONCILE_SECONDS"] = "100000"  # the bench owns the route meanwhile
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    orders: list[str] = []
    try:
        server.start_with_key()
        app = server.deploy_new_app("static-site", "mbench")
        settings = settings_of(server)
        conf = (settings.nginx_dir / "conf" / "apps" / f"{app}.conf").read_text()
        upstream = re.search(r"server (\S+) max_fails", conf).group(1)  # type: ignore[union-attr]
        router = Router(settings)
        METER.nginx_master = router.running_pid()
        web = web_container(app)
        METER.container_id = web.id if web else None
        host = f"{app}.{settings.domain}"

        def route(on: bool) -> Route:
            extras = RouteExtras()
            if on:
                extras.set_metrics_log(str(settings.metrics_log_path))
            return Route(app, [host], [upstream], extras, {upstream: 1})

        def serve(mode: str) -> None:
            if mode in VARIANTS:
                text = VARIANTS[mode](router.render_app(route(True)))
                router.ensure_layout()
                router._install(app, text)  # noqa: SLF001 - a bench-only config, checked by nginx -t
            else:
                router.set_route(route(mode == "on"))

        url = f"http://127.0.0.1:{settings.http_port}/"
        assert server.proc is not None
        pid = server.proc.pid
        serve("on")
        wrk(url, 2, opts.connections, {"Host": host})  # warm up (not counted)
        time.sleep(COUNT_WAIT)  # the deploy's and the warm-up's lines counted
        before = json.loads(server.ssh("metrics", app, "--format", "json").stdout)["requests"]["requests"]
        for pair in range(opts.pairs):
            order = modes[pair % len(modes) :] + modes[: pair % len(modes)]
            if len(modes) == 2 and pair % 2:
                order = ["on", "off"]
            orders.append("-".join(order))
            for mode in order:
                serve(mode)
                speed = speed_probe()
                cpu0, t0 = process_cpu(pid), time.monotonic()
                result = wrk(url, opts.seconds, opts.connections, {"Host": host})
                time.sleep(opts.settle)
                result["server_s"] = process_cpu(pid) - cpu0
                result["wall_s"] = time.monotonic() - t0
                result["speed"] = speed
                runs[mode].append(result)
        time.sleep(COUNT_WAIT)
        counted = json.loads(server.ssh("metrics", app, "--since", "1h", "--format", "json").stdout)
        lines = settings.metrics_log_path.read_text().splitlines()
    finally:
        shutdown(server)
        shutil.rmtree(root, ignore_errors=True)
    report(opts, modes, runs, orders)
    logged = {m: int(sum(r["requests"] for r in runs[m])) for m in modes if m != "off"}
    total = counted["requests"]["requests"] - before
    each = ", ".join(f"{m} {n}" for m, n in logged.items())
    sent = sum(logged.values())
    print(f"counted by the history: {total} requests (wrk sent {sent} with a metrics log: {each})")
    # The collector's parsing alone, in this process: the run's lines through count(), 5 times
    # (and in turn with the count() of --count-against, on the same lines)
    fns = {"this tree": count}
    if opts.count_against:
        with tempfile.TemporaryDirectory() as tmp:
            fns[opts.count_against] = count_at(opts.count_against, Path(tmp))
    sample = lines[:100_000]
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(5):
        for name, fn in fns.items():
            times[name].append(time_count(fn, sample))
    print(
        f"the collector's count() alone, over {len(sample)} of the run's lines (median of 5, this process):"
    )
    for name, ts in times.items():
        print(f"  {name:<12} {statistics.median(ts):.2f} us per line ({min(ts):.2f}-{max(ts):.2f})")
    if opts.count_against:
        pairs = [a / b for a, b in zip(times["this tree"], times[opts.count_against], strict=True)]
        print(f"  this tree / {opts.count_against}: {statistics.median(pairs):.2f}x")
    return 0


def report(
    opts: argparse.Namespace, modes: list[str], runs: dict[str, list[dict[str, float]]], orders: list[str]
) -> None:
    fastest = max(r["speed"] for rs in runs.values() for r in rs)
    print(
        f"wrk -t1 -c{opts.connections} -d{opts.seconds}s through the router to the static-site app"
        f" (nginx in its container); {opts.pairs} pairs, each pair's order flipped; settle {opts.settle:g} s"
    )
    head = f"{'pair':<5}{'order':<{max(len(o) for o in orders) + 2}}"
    for m in modes:
        head += f"{m + ' req/s':>{max(12, len(m) + 8)}}"
    for m in modes[1:]:
        head += f"{m + '/off':>{max(9, len(m) + 6)}}"
    head += f"{'speed':>7}"
    print(head)
    ratios = {
        m: [on["rps"] / off["rps"] for on, off in zip(runs[m], runs["off"], strict=True)] for m in modes[1:]
    }
    for i, order in enumerate(orders):
        row = f"{i + 1:<5}{order:<{max(len(o) for o in orders) + 2}}"
        for m in modes:
            row += f"{runs[m][i]['rps']:>{max(12, len(m) + 8)}.0f}"
        for m in modes[1:]:
            row += f"{ratios[m][i]:>{max(9, len(m) + 6)}.3f}"
        speeds = [runs[m][i]["speed"] / fastest for m in modes]
        row += f"{min(speeds):>5.2f}-{max(speeds):.2f}"
        print(row)
    print()
    idle_rate = sum(r["server_s"] for r in runs["off"]) / sum(r["wall_s"] for r in runs["off"])
    for rs in runs.values():
        for r in rs:  # the server's CPU beyond its same-run idle (runs without the log), per request
            r["server_us"] = (r["server_s"] - idle_rate * r["wall_s"]) * 1e6 / r["requests"]
            r["total_us"] = r["wrk_us"] + r["router_us"] + r["app_us"] + r["server_us"]
    print(f"{'':<13}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'ratio':>8}{'quartiles':>14}{'range':>14}"
          f"   CPU us/request (= ms per 1,000): {'wrk':>5}{'nginx':>7}{'app':>6}{'server':>8}{'all':>7}"
          f"{'cpu ratio':>11}")  # fmt: skip
    for m in modes:
        rs = runs[m]
        med = {
            k: statistics.median(r[k] for r in rs)
            for k in ("rps", "p50", "p99", "wrk_us", "router_us", "app_us")
        }
        served = sum(r["requests"] for r in rs)
        server_us = sum(r["server_us"] * r["requests"] for r in rs) / served  # over the whole run
        cpu = [o["total_us"] / r["total_us"] for r, o in zip(rs, runs["off"], strict=True)]
        if m == "off":
            ratio, q, rng = "1.000x", "", ""
        else:
            ratio = f"{statistics.median(ratios[m]):.3f}x"
            lo, hi = quartiles(ratios[m])
            q = f"{lo:.3f}-{hi:.3f}"
            rng = f"{min(ratios[m]):.3f}-{max(ratios[m]):.3f}"
        print(
            f"{m:<13}{med['rps']:>8.0f}{med['p50']:>8.2f}{med['p99']:>8.2f}{ratio:>8}{q:>14}{rng:>14}"
            f"{'':>35}{med['wrk_us']:>5.1f}{med['router_us']:>7.1f}{med['app_us']:>6.1f}{server_us:>8.2f}"
            f"{statistics.median(r['total_us'] for r in rs):>7.1f}{statistics.median(cpu):>10.3f}x"
        )
    for m in modes[1:]:
        extra = [a["router_us"] - b["router_us"] for a, b in zip(runs[m], runs["off"], strict=True)]
        lo, hi = quartiles(extra)
        # the app's CPU per request is the same work in every mode: nginx's against it cancels the
        # CPU's pace (a slowed CPU bills more microseconds for the same work to both)
        paced = [
            (a["router_us"] / a["app_us"]) / (b["router_us"] / b["app_us"]) - 1
            for a, b in zip(runs[m], runs["off"], strict=True)
            if a["app_us"] > 0 and b["app_us"] > 0 and b["router_us"] > 0
        ]
        plo, phi = quartiles(paced) if paced else (0.0, 0.0)
        print(
            f"{m}: nginx {statistics.median(extra):+.1f} us per request over off (median of the pairs',"
            f" quartiles {lo:+.1f} to {hi:+.1f}); against the app's CPU per request (the CPU's pace"
            f" cancelled): {statistics.median(paced) * 100 if paced else 0.0:+.1f}% (quartiles"
            f" {plo * 100:+.1f} to {phi * 100:+.1f}%); pairs faster than off: {sum(r > 1 for r in ratios[m])}"
            f" of {len(ratios[m])}"
        )
    on = statistics.median(ratios["on"])
    counting = sum(r["server_us"] * r["requests"] for r in runs["on"]) / sum(
        r["requests"] for r in runs["on"]
    )
    print(
        f"on/off throughput: {on:.3f}x; target >= 0.95x: {'met' if on >= 0.95 else 'NOT met'};"
        f" the server's counting: {counting:.2f} ms of CPU per 1,000 requests"
        f" (its CPU in the runs without the log, {idle_rate * 1000:.1f} ms per second, taken off)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
