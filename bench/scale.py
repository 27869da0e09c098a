"""How the cost grows with the number of apps: 10, 50, 100, 200 small apps on one box, one run.

One `paas server` (SSH, dashboard, router, reconcile loop at its default interval) on a data dir
of its own. The first app is a real `git push` of tests/e2e/apps/stdlib-web (a Procfile-only app
on the stack: `web: python3 server.py`); the others are made as the service layer makes apps
(`apps.create_app`), each with a build and release of that same image tagged for it, web=1, so
the server's own reconcile loop starts, checks and routes every one of them (as after a restore;
pushing 200 times would measure builds, which bench/deploy.py does). For each N, once all N
answer through nginx:

- the server's idle CPU and RSS (the server, its dashboard gunicorns; nginx beside it) over
  --idle seconds of nothing but its own loops; the reconcile passes it made meanwhile (the server
  records each in reconcile.json); measured at once when all N serve, and again once every
  container is up a minute or more ("settled": before that, a pass reads a young container's
  details every time, as it may still be starting or crash-looping);
- one route change: `nginx -t` and reload with N apps (Router.set_route of one app's route with
  one directive more, then back), and `domains:add` over SSH (the whole command);
- `ssh paas apps:list` and `ssh paas ps <app>` against `ssh paas version` (the SSH handshake and
  a command that reads nothing), same run;
- the dashboard's app list and the API's `/api/apps`, p50/p95 of sequential requests through
  nginx;
- memory per idle app process (its cgroup's rss), the store's and nginx's config size;
- with --restart only (it restarts dockerd, stopping every other container on the machine): the
  time until all N serve again after a dockerd restart, counted from the SIGTERM (the whole
  outage) and from when dockerd's API answers again (what is left for nginx and the server).

Then a table of every figure by N, with the growth exponent from each N to the next (1 is
linear, 0 flat, 2 quadratic); growth above 1.3 is marked.

    .venv/bin/python bench/scale.py [--sizes 10,50,100,200] [--idle 60] [--restart] [--profile]
        [--full-seconds 30]  (0: the pass visits every app every time, as before issue 33's last step)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dashboard import PASSWORD, Browser  # noqa: E402
from paas.core import cgroups, names  # noqa: E402
from paas.core.context import Context  # noqa: E402
from paas.services import apps as app_service  # noqa: E402
from paas.services import reconcile, routing, schedulers  # noqa: E402
from paas.settings import Settings  # noqa: E402
from tests.e2e.conftest import PaasServer, restart_dockerd, shutdown  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --- the processes -------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """`pid` and every descendant (the server's dashboard gunicorns, its pack processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_and_rss(pids: list[int]) -> tuple[float, int]:
    """CPU seconds used so far and resident bytes now, summed over `pids`."""
    cpu, rss = 0.0, 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / TICKS
        rss += int(fields[21]) * PAGE
    return cpu, rss


def dockerd_pids() -> list[int]:
    """The engine the server talks to (/var/run/docker.pid) and its containerd-shims' parent."""
    try:
        return [int(Path("/var/run/docker.pid").read_text())]
    except (OSError, ValueError):
        return []


def nginx_pids(server: PaasServer) -> list[int]:
    try:
        return tree(int((server.data_dir / "nginx" / "run" / "nginx.pid").read_text()))
    except (OSError, ValueError):
        return []


# --- making apps ---------------------------------------------------------------------------


def host_ctx(server: PaasServer) -> Context:
    settings = Settings.from_env()
    return Context.open(settings, actor="alice", is_admin=True, on_host=True)


def add_apps(ctx: Context, seed: str, count: int, prefix: str) -> list[str]:
    """`count` apps made like `apps:create`, each released with the seed app's image (tagged
    for it), web=1: the server's reconcile loop starts them."""
    app = ctx.store.get_app(seed)
    release = ctx.store.current_release(app.id)  # type: ignore[union-attr]
    build = ctx.store.build_of(release)
    assert build is not None and build.image
    image = ctx.docker.images.get(build.image)
    out = []
    for _ in range(count):
        name = f"{prefix}{uuid.uuid4().hex[:8]}"
        made = app_service.create_app(ctx, name)
        tag = f"b1-{ctx.settings.instance_id}"
        image.tag(names.image_repository(name), tag)
        b = ctx.store.create_build(made.id, uuid.uuid4().hex, "alice")
        ref = f"{names.image_repository(name)}:{tag}"
        ctx.store.finish_build(b, "succeeded", "", ref, build.processes, "python")
        r = ctx.store.create_release(made.id, b, {}, {"web": 1}, "Deploy", "alice")
        ctx.store.set_release_status(r.id, "succeeded")
        ctx.store.set_formation(made.id, {"web": 1})
        out.append(name)
    return out


def serving(server: PaasServer, app: str) -> bool:
    try:
        status, _ = server.get(f"{app}.{server_domain(server)}")
    except OSError:
        return False
    return status == 200


def server_domain(server: PaasServer) -> str:
    return Settings.from_env().domain


def wait_serving(server: PaasServer, apps: list[str], timeout: float) -> float:
    """Seconds until every app answers 200 through nginx (raises after `timeout`)."""
    started = time.monotonic()
    left = list(apps)
    with ThreadPoolExecutor(8) as pool:
        while left:
            answers = list(pool.map(lambda a: serving(server, a), left))
            left = [a for a, ok in zip(left, answers, strict=True) if not ok]
            if left and time.monotonic() - started > timeout:
                raise RuntimeError(f"{len(left)} of {len(apps)} apps not serving after {timeout:.0f} s")
            if left:
                time.sleep(0.5)
    return time.monotonic() - started


# --- the figures ---------------------------------------------------------------------------


def idle(server: PaasServer, seconds: float) -> dict[str, float]:
    """The server's and nginx's CPU share and RSS while nothing but their own loops runs, and
    the reconcile passes the server recorded meanwhile."""
    record = names.reconcile_record(Settings.from_env())
    assert server.proc is not None
    pids = tree(server.proc.pid)
    cpu0, _ = cpu_and_rss(pids)
    ncpu0, _ = cpu_and_rss(nginx_pids(server))
    dcpu0, _ = cpu_and_rss(dockerd_pids())
    t0 = time.monotonic()
    passes: dict[float, float] = {}
    visited: dict[float, int] = {}
    while time.monotonic() - t0 < seconds:
        try:
            last = json.loads(record.read_text())
            passes[last["at"]] = last["seconds"]
            visited[last["at"]] = last.get("visited", last["apps"])
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    took = time.monotonic() - t0
    cpu1, rss = cpu_and_rss(pids)
    ncpu1, nrss = cpu_and_rss(nginx_pids(server))
    dcpu1, _ = cpu_and_rss(dockerd_pids())
    _, main_rss = cpu_and_rss([server.proc.pid])
    durations = sorted(passes.values()) or [float("nan")]
    return {
        "idle CPU, server (%)": 100 * (cpu1 - cpu0) / took,
        "RSS, server tree (MiB)": rss / 2**20,
        "RSS, server process (MiB)": main_rss / 2**20,
        "idle CPU, nginx (%)": 100 * (ncpu1 - ncpu0) / took,
        "RSS, nginx (MiB)": nrss / 2**20,
        "idle CPU, dockerd (%, shared)": 100 * (dcpu1 - dcpu0) / took,
        "reconcile pass, median (s)": statistics.median(durations),
        "reconcile pass, max (s)": durations[-1],
        "apps visited per pass, mean": statistics.mean(visited.values()) if visited else float("nan"),
    }


def route_change(ctx: Context, app: str, rounds: int) -> float:
    """Median seconds of one route change (nginx -t with every app, reload, workers swapped)."""
    router = routing.router(ctx)
    found = ctx.store.get_app(app)
    scheduler = schedulers.for_app(ctx, found)  # type: ignore[arg-type]
    upstreams = routing.tagged(scheduler, scheduler.processes(app))
    took = []
    for i in range(rounds * 2):
        route = routing.app_route(ctx, app, upstreams)
        if i % 2 == 0:
            route.extras.add_directive("client_max_body_size 11m")
        started = time.perf_counter()
        router.set_route(route)
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def ssh_ms(server: PaasServer, args: list[str], rounds: int) -> float:
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        done = server.ssh(*args)
        took.append(time.perf_counter() - started)
        assert done.returncode == 0, done.output
    return 1000 * statistics.median(took)


def p50_p95(browser: Browser, path: str, rounds: int) -> tuple[float, float]:
    """Sequential GETs through nginx, paced under the API's rate limit (50/s per address)."""
    for _ in range(5):
        browser.request("GET", path)
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        status, _ = browser.request("GET", path)
        took.append(1000 * (time.perf_counter() - started))
        assert status == 200, (path, status)
        time.sleep(1 / 30)
    q = statistics.quantiles(took, n=20)
    return statistics.median(took), q[18]


RSS_KEYS = ("total_rss", "rss", "anon")  # cgroup v1 (hierarchical, own), v2


def app_memory(ctx: Context) -> float:
    """Median resident memory of the running app processes (their cgroups' rss), MiB."""
    values = []
    labels = names.label_filter(ctx.settings.instance_id, role=names.ROLE_PROCESS)
    for c in ctx.docker.api.containers(filters={"label": labels}):
        found = cgroups.stats(c["Id"], keys=RSS_KEYS)
        if found is not None:
            fields = found["memory_stats"]["stats"]
            values.append(int(fields.get("total_rss", fields.get("rss", fields.get("anon", 0)))))
    return statistics.median(values) / 2**20 if values else float("nan")


def sizes(server: PaasServer) -> dict[str, float]:
    store = sum(p.stat().st_size for p in server.data_dir.glob("*.db*"))
    conf = sum(p.stat().st_size for p in (server.data_dir / "nginx" / "conf").rglob("*.conf"))
    return {"store (KiB)": store / 1024, "nginx config (KiB)": conf / 1024}


# --- the run -------------------------------------------------------------------------------


SETTLED_SECONDS = 65  # a container up under a minute has its details read every pass (host_containers)


def measure(server: PaasServer, ctx: Context, client: Browser, apps: list[str], args) -> dict[str, float]:  # type: ignore[no-untyped-def]
    serving = time.monotonic()
    out = idle(server, args.idle)  # at once: the last app's containers are seconds old
    time.sleep(max(0.0, SETTLED_SECONDS - (time.monotonic() - serving)))
    settled = idle(server, args.idle)  # every container up a minute or more: only the loops run
    for key in ("idle CPU, server (%)", "idle CPU, dockerd (%, shared)", "reconcile pass, median (s)"):
        out[key.replace(" (", ", settled (", 1)] = settled[key]
    out["apps visited per pass, settled mean"] = settled["apps visited per pass, mean"]
    out["route change, nginx -t + reload (s)"] = route_change(ctx, apps[0], 3)
    domain = f"d{uuid.uuid4().hex[:6]}.example.com"
    started = time.perf_counter()
    added = server.ssh("domains:add", apps[0], domain)
    assert added.returncode == 0, added.output
    out["domains:add over SSH (ms)"] = 1000 * (time.perf_counter() - started)
    out["ssh version (ms)"] = ssh_ms(server, ["version"], args.rounds)
    out["ssh apps:list (ms)"] = ssh_ms(server, ["apps:list"], args.rounds)
    out["ssh ps <app> (ms)"] = ssh_ms(server, ["ps", apps[-1]], args.rounds)
    p50, p95 = p50_p95(client, "/", args.rounds * 3)
    out["dashboard apps p50 (ms)"], out["dashboard apps p95 (ms)"] = p50, p95
    p50, p95 = p50_p95(client, "/api/v1/apps", args.rounds * 3)
    out["API /api/v1/apps p50 (ms)"], out["API /api/v1/apps p95 (ms)"] = p50, p95
    out["memory per app process (MiB)"] = app_memory(ctx)
    out.update(sizes(server))
    if args.restart:
        # Timed from the stop: dockerd restarts the containers (restart policy) before its API
        # answers, so "from when it answers" leaves out most of the outage.
        stopped = time.monotonic()
        restart_dockerd(server.data_dir / "dockerd-restart.log")
        answered = time.monotonic()
        wait_serving(server, apps, 600)
        out["dockerd restart: stop to API answering (s)"] = answered - stopped
        out["all serving after a dockerd restart, from the stop (s)"] = time.monotonic() - stopped
        out["all serving after a dockerd restart, from the API (s)"] = time.monotonic() - answered
    return out


def soak(server: PaasServer, seconds: float) -> None:
    """Whether anything in the server grows with time: its RSS (the server process, and the
    tree) every minute over `seconds` of reconcile passes, with the least-squares slope of the
    second half (after warm-up) in KiB per hour, and the passes it recorded."""
    assert server.proc is not None
    record = names.reconcile_record(Settings.from_env())
    started, samples, passes = time.monotonic(), [], 0
    last_at = None
    while time.monotonic() - started < seconds:
        _, main_rss = cpu_and_rss([server.proc.pid])
        _, tree_rss = cpu_and_rss(tree(server.proc.pid))
        samples.append((time.monotonic() - started, main_rss, tree_rss))
        print(
            f"       soak {samples[-1][0]:6.0f} s: server {main_rss / 2**20:7.1f} MiB,"
            f" tree {tree_rss / 2**20:7.1f} MiB",
            flush=True,
        )
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                at = json.loads(record.read_text())["at"]
                if at != last_at:
                    passes, last_at = passes + 1, at
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)
    half = samples[len(samples) // 2 :]
    for label, idx in (("server process", 1), ("server tree", 2)):
        xs, ys = [t / 3600 for t, *_ in half], [row[idx] / 1024 for row in half]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / max(
            1e-9, sum((x - mx) ** 2 for x in xs)
        )
        print(
            f"       soak: {label} RSS slope over the second half {slope:+.0f} KiB/hour "
            f"(from {half[0][idx] / 2**20:.1f} to {half[-1][idx] / 2**20:.1f} MiB)"
        )
    print(f"       soak: at least {passes} reconcile passes seen in {seconds:.0f} s")


def profile_pass(ctx: Context) -> None:
    import cProfile
    import pstats

    reconcile.reconcile_all(ctx)  # this process's first pass inspects everything: warm up
    prof = cProfile.Profile()
    prof.runcall(reconcile.reconcile_all, ctx)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def table(results: dict[int, dict[str, float]]) -> None:
    sizes_ = sorted(results)
    keys = list(results[sizes_[0]])
    head = f"{'figure':<42}" + "".join(f"{'N=' + str(n):>10}" for n in sizes_) + "   growth per step"
    print(head)
    print("-" * len(head))
    for key in keys:
        values = [results[n].get(key, float("nan")) for n in sizes_]
        steps = []
        pairs = list(zip(sizes_, values, strict=True))
        for (n1, v1), (n2, v2) in zip(pairs, pairs[1:], strict=False):
            if v1 > 0 and v2 > 0 and not (math.isnan(v1) or math.isnan(v2)):
                e = math.log(v2 / v1) / math.log(n2 / n1)
                steps.append(f"{e:+.2f}{'!' if e > 1.3 else ''}")
            else:
                steps.append("  -  ")
        print(f"{key:<42}" + "".join(f"{v:>10.3g}" for v in values) + "   " + " ".join(steps))
    print("(! marks a step that grows faster than linearly: exponent > 1.3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,100,200")
    parser.add_argument("--idle", type=float, default=60, help="seconds of idle measured per N")
    parser.add_argument("--rounds", type=int, default=10, help="SSH commands per figure (HTTP: 3x)")
    parser.add_argument("--restart", action="store_true", help="restart dockerd per N (stops all)")
    parser.add_argument("--profile", action="store_true", help="profile one reconcile pass per N")
    parser.add_argument("--keep", action="store_true", help="leave the server's data dir")
    parser.add_argument("--soak", type=float, default=0, help="then watch RSS this many seconds")
    parser.add_argument("--reconcile-seconds", default="5", help="the server's PAAS_RECONCILE_SECONDS")
    parser.add_argument(
        "--full-seconds",
        default="30",
        help="the server's PAAS_RECONCILE_FULL_SECONDS (0: every app every pass)",
    )
    args = parser.parse_args()
    wanted = sorted(int(n) for n in args.sizes.split(","))
    root = Path(tempfile.mkdtemp(prefix="paas-bench-scale-"))
    server = PaasServer(root)
    server.env["PAAS_RECONCILE_SECONDS"] = args.reconcile_seconds  # default 5, not the tests' 1 s
    server.env["PAAS_RECONCILE_FULL_SECONDS"] = args.full_seconds
    server.env["PAAS_BOOT_TIMEOUT"] = "60"
    os.environ.update(server.env)  # this process is that server's host (Settings.from_env)
    results: dict[int, dict[str, float]] = {}
    try:
        server.start_with_key("alice")
        server.add_user("alice-web", PASSWORD, admin=True)
        print(f"-----> server on {root}; pushing the seed app (stdlib-web)", flush=True)
        started = time.monotonic()
        seed = server.deploy_new_app("stdlib-web", "s")
        print(f"       first deploy: {time.monotonic() - started:.1f} s", flush=True)
        ctx = host_ctx(server)
        client = Browser(server.http_port, Settings.from_env().dashboard_host, server.token("alice"))
        apps = [seed]
        for n in wanted:
            made = add_apps(ctx, seed, n - len(apps), "s")
            apps += made
            up = wait_serving(server, apps, 60 + 3 * len(made))
            print(f"-----> N={n}: {len(made)} apps added, all {n} serving after {up:.1f} s", flush=True)
            if not client.cookie:
                client.login("alice-web")
            results[n] = {"all serving after adding apps (s)": up, **measure(server, ctx, client, apps, args)}
            for k, v in results[n].items():
                print(f"       {k:<42} {v:10.3f}", flush=True)
            if args.profile:
                profile_pass(ctx)
        table(results)
        if args.soak:
            soak(server, args.soak)
    finally:
        shutdown(server)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
