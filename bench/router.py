"""What the router costs: requests/s and p50/p99 with `wrk` (keep-alive), in the same run,
straight to the app's container, through nginx over HTTP, and through nginx over HTTPS
(HTTP/1.1 over TLS 1.3 with the app's certificate, SNI `localhost`).

Starts a `paas server` on loopback high ports, deploys a small app (Python's http.server),
gives it the name `localhost` and a self-signed certificate, then runs wrk against the three.
Targets: HTTP >= 0.9x direct, HTTPS >= 0.8x direct, <= 0.3 ms added at p50. Not a test: it
prints figures.

    PAAS_BUILD_CA_BUNDLE=... .venv/bin/python bench/router.py [--seconds 10] [--connections 4]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import unique_app  # noqa: E402
from tests.e2e.test_https import deploy_echo, https_server, ok  # noqa: E402

WRK = "/usr/bin/wrk"  # Debian's package
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"cannot read wrk's latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, seconds: int, connections: int, host: str | None = None) -> dict[str, float]:
    args = [WRK, "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", url]
    if host:
        args[1:1] = ["-H", f"Host: {host}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        raise SystemExit(f"wrk saw errors on {url}:\n{out}")
    return {"rps": rps, "p50": p50, "p99": p99}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=4)
    opts = parser.parse_args()
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
            upstream = re.search(r"server (127\.0\.0\.1:\d+) ", conf).group(1)  # type: ignore[union-attr]
            secs, conns = opts.seconds, opts.connections
            runs = {
                "direct": wrk(f"http://{upstream}/", secs, conns),
                "router http": wrk(f"http://127.0.0.1:{server.http_port}/", secs, conns, "localhost"),
                "router https": wrk(f"https://localhost:{server.https_port}/", secs, conns),
            }
            # direct again: the machine is shared, so the baseline is measured on both sides
            again = wrk(f"http://{upstream}/", secs, conns)
            base = {k: (runs["direct"][k] + again[k]) / 2 for k in again}
            runs["direct"] = base
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"wrk -t1 -c{opts.connections} -d{opts.seconds}s, keep-alive, {opts.connections} connections")
    print(f"{'':<14}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}{'+p50 ms':>9}")
    for name, r in runs.items():
        ratio, added = r["rps"] / base["rps"], r["p50"] - base["p50"]
        print(f"{name:<14}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{ratio:>7.2f}x{added:>9.2f}")
    http, https = runs["router http"], runs["router https"]
    print(
        f"targets: HTTP >= 0.9x ({http['rps'] / base['rps']:.2f}x), HTTPS >= 0.8x "
        f"({https['rps'] / base['rps']:.2f}x), <= 0.3 ms added at p50 "
        f"(HTTP {http['p50'] - base['p50']:+.2f}, HTTPS {https['p50'] - base['p50']:+.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
