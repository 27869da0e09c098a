"""Steady load on an app while it is redeployed 10 times; prints failures and latency.

A separate process sends >= 50 requests/s (loopback only, bounded in time) through the nginx
router while this one runs: 4 code pushes, 2 config:set, scale up, scale down, a ps:restart and a
rollback. It prints total and failed requests (non-2xx or connection errors) and p50/p99 latency
during deploys and outside them. Target: 0 failed. Not a test: it prints figures.
"""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATE = 80  # requests per second, over 4 connections-per-request workers
MAX_SECONDS = 600


def load(port: int, host: str, seconds: float, out: Path) -> None:
    """The load generator (run as its own process): one new connection per request."""
    stop = time.monotonic() + min(seconds, MAX_SECONDS)
    results: list[tuple[float, float, int]] = []  # (start, latency, status or 0 for error)
    lock = threading.Lock()
    workers = 4
    interval = workers / RATE

    def worker(offset: float) -> None:
        next_at = time.monotonic() + offset
        while True:
            now = time.monotonic()
            if now >= stop or Path(str(out) + ".stop").exists():
                return
            if now < next_at:
                time.sleep(next_at - now)
            next_at += interval
            t0 = time.time()
            status = 0
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/", headers={"Host": host})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                conn.close()
            except (OSError, http.client.HTTPException):
                status = 0
            with lock:
                results.append((t0, time.time() - t0, status))

    threads = [threading.Thread(target=worker, args=(i * interval / workers,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.write_text(json.dumps(results))


def p(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100)[q - 1]


def main() -> int:
    from tests.e2e.conftest import running_server

    with tempfile.TemporaryDirectory(prefix="bench-zd-") as tmp, running_server(Path(tmp), "bench") as paas:
        root = Path(tmp)
        app = "zd"
        src = paas.make_repo("flask-hello", app)
        paas.git(src, "remote", "add", "paas", f"paas:{app}")
        first = paas.git(src, "push", "paas", "main")
        if first.returncode != 0:
            print(first.output)
            return 1
        out = root / "load.json"
        loader = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--load",
                str(paas.http_port),
                f"{app}.localhost",
                str(MAX_SECONDS),
                str(out),
            ]
        )
        windows: list[tuple[str, float, float, int]] = []

        def op(name: str, fn) -> None:  # type: ignore[no-untyped-def]
            t0 = time.time()
            rc = fn()
            windows.append((name, t0, time.time(), rc))
            time.sleep(2)  # some steady state between operations

        def push(n: int):  # type: ignore[no-untyped-def]
            def run() -> int:
                (src / "VERSION").write_text(f"{n}\n")
                paas.git(src, "commit", "-qam", f"v{n}")
                return paas.git(src, "push", "paas", "main").returncode

            return run

        try:
            time.sleep(3)
            op("push", push(2))
            op("config:set", lambda: paas.ssh("config:set", app, "A=1").returncode)
            op("scale up", lambda: paas.ssh("apps:scale", app, "web=2").returncode)
            op("push", push(3))
            op("config:set", lambda: paas.ssh("config:set", app, "B=2").returncode)
            op("scale down", lambda: paas.ssh("apps:scale", app, "web=1").returncode)
            op("push", push(4))
            op("ps:restart", lambda: paas.ssh("ps:restart", app).returncode)
            op("rollback", lambda: paas.ssh("releases:rollback", app).returncode)
            op("push", push(5))
        finally:
            Path(str(out) + ".stop").write_text("")
            loader.wait(timeout=60)
        results = json.loads(out.read_text())
    during, outside = [], []
    failed = [r for r in results if not 200 <= r[2] < 300]
    for start, latency, _status in results:
        inside = any(w0 <= start <= w1 for _n, w0, w1, _rc in windows)
        (during if inside else outside).append(latency)
    elapsed = results[-1][0] - results[0][0] if results else 0
    print(
        f"operations: {len(windows)} ({', '.join(n for n, *_ in windows)}); "
        f"all succeeded: {all(rc == 0 for *_, rc in windows)}"
    )
    for name, w0, w1, rc in windows:
        print(f"  {name:<11} {w1 - w0:5.2f} s  exit {rc}")
    print(
        f"requests: {len(results)} in {elapsed:.0f} s ({len(results) / max(elapsed, 1):.0f}/s), "
        f"failed: {len(failed)}"
    )
    print(
        f"latency during deploys:  n={len(during)} p50 {p(during, 50) * 1000:.1f} ms  "
        f"p99 {p(during, 99) * 1000:.1f} ms"
    )
    print(
        f"latency outside deploys: n={len(outside)} p50 {p(outside, 50) * 1000:.1f} ms  "
        f"p99 {p(outside, 99) * 1000:.1f} ms"
    )
    print("target: 0 failed")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--load":
        load(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), Path(sys.argv[5]))
        sys.exit(0)
    sys.exit(main())
