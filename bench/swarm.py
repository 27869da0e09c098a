"""Swarm vs docker-local, same run, same app (tests/e2e/apps/stdlib-web), a real `paas server`.

(1) Code-only redeploy: `git push` of a one-line change, timed until it returns (the new release
    serving through the router), --runs times per scheduler, one app on docker-local and one on
    swarm; the figure is the median. `ratio: swarm/docker-local` (target <= 2x).
(2) Requests/s through the router (wrk, keep-alive) to the swarm app at web=4 on 3 nodes (this
    host + 2 simulated ones from tests/e2e/swarm_hosts.py) vs web=1 on one node.
    Note: the simulated nodes share this machine's 2 cores, so (2) shows the routing overhead and
    the spread, not the capacity 3 real machines would add.

    .venv/bin/python bench/swarm.py [--runs 5] [--seconds 10] [--no-nodes]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from bench.router import wrk  # noqa: E402
from tests.e2e.conftest import PaasServer, free_port, unique_app  # noqa: E402
from tests.e2e.swarm_hosts import make_cluster  # noqa: E402
from tests.e2e.test_swarm import commit, swarm_server  # noqa: E402

os.environ.setdefault("PAAS_HTTPS_PORT", str(free_port()))
os.environ.setdefault("PAAS_HTTPS_BIND", "127.0.0.1")


def new_app(paas: PaasServer, prefix: str, scheduler: str) -> tuple[str, Path]:
    app = unique_app(prefix)
    assert paas.ssh("apps:create", app).returncode == 0
    r = paas.ssh("scheduler:set", app, scheduler)
    assert r.returncode == 0, r.output
    src = paas.make_repo("stdlib-web", app)
    paas.git(src, "remote", "add", "paas", f"paas:{app}")
    r = paas.git(src, "push", "paas", "main")
    assert r.returncode == 0, r.output
    return app, src


def redeploy(paas: PaasServer, app: str, src: Path, version: int) -> float:
    commit(paas, src, {"VERSION": f"{version}\n"}, f"v{version}")
    t0 = time.monotonic()
    r = paas.git(src, "push", "paas", "main")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.output
    assert paas.get(f"{app}.localhost")[1].startswith(f"version {version}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--no-nodes", action="store_true", help="only this host (skips the 3-node part)")
    args = parser.parse_args()
    client = docker.from_env()
    cluster = None if args.no_nodes else make_cluster(client)
    root = Path(tempfile.mkdtemp(prefix="paas-bench-swarm-"))
    try:
        with swarm_server(root, cluster) as paas:
            local, local_src = new_app(paas, "blocal", "docker-local")
            swarm, swarm_src = new_app(paas, "bswarm", "swarm")
            times: dict[str, list[float]] = {"docker-local": [], "swarm": []}
            for run in range(args.runs):
                version = run + 2
                times["docker-local"].append(redeploy(paas, local, local_src, version))
                times["swarm"].append(redeploy(paas, swarm, swarm_src, version))
            for name, ts in times.items():
                print(
                    f"redeploy {name:12s} median {statistics.median(ts):6.2f} s"
                    f"  runs {[round(t, 2) for t in ts]}"
                )
            ratio = statistics.median(times["swarm"]) / statistics.median(times["docker-local"])
            print(f"ratio: swarm/docker-local redeploy {ratio:.2f} (target <= 2)")

            url = f"http://127.0.0.1:{paas.http_port}/"
            host = f"{swarm}.localhost"
            one = wrk(url, args.seconds, 16, host)
            print(
                f"swarm web=1 (1 node):  {one['rps']:8.0f} req/s  p50 {one['p50']:.1f} ms"
                f"  p99 {one['p99']:.1f} ms"
            )
            r = paas.ssh("apps:scale", swarm, "web=4")
            assert r.returncode == 0, r.output
            nodes = {p.split(" on ")[-1] for p in paas.ssh("ps", swarm).stdout.splitlines() if " on " in p}
            four = wrk(url, args.seconds, 16, host)
            print(
                f"swarm web=4 ({len(nodes)} nodes): {four['rps']:8.0f} req/s  p50 {four['p50']:.1f} ms"
                f"  p99 {four['p99']:.1f} ms"
            )
            print(
                f"ratio: web=4 on {len(nodes)} nodes / web=1 on one, requests/s"
                f" {four['rps'] / one['rps']:.2f}"
            )
    finally:
        if cluster is not None:
            cluster.forget()
        subprocess.run(["rm", "-rf", str(root)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
