"""Deploy speed: `git push` to paas versus a plain Dockerfile on the same stack, in one run.

The same Flask + gunicorn app (tests/e2e/apps/flask-hello) goes through
  (a) `git push` over SSH to a real `paas server` (loopback ports, its own data dir), timed from
      the start of the push until the new version answers through the router;
  (b) `docker build` + `docker run` of a hand-written Dockerfile FROM the same stack image (through
      the Docker SDK), timed from the start of the build until the new container answers on its
      published port.
Both are measured for a first deploy (cold: a new app with an empty build cache; a Dockerfile
whose layers after FROM are not in docker's cache) and for a code-only change (median of
--runs). An untimed build first warms whatever sits between here and the package index, so
neither path pays for it alone. Not a test: it prints the figures and the ratios.

Where the time goes: the pack process logs one `paas.timing` line per phase (wall-clock start and
end, paas/core/timing.py); the bench puts them on the push's own time line, and does the same for
the Dockerfile path's steps. The last line is `ratios: first=<x.xx> code_only=<y.yy>` (git push
time / Dockerfile time; code-only: medians).

    .venv/bin/python bench/deploy.py [--runs 3]      (PAAS_BUILD_CA_BUNDLE as for `make test`)
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import re
import shutil
import statistics
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paas.buildpacks import stack  # noqa: E402
from tests.e2e.conftest import APPS_DIR, PaasServer, free_port, shutdown  # noqa: E402

# HTTPS on a free loopback port: 443 may be taken on a shared machine (the servers copy os.environ).
os.environ.setdefault("PAAS_HTTPS_PORT", str(free_port()))
os.environ.setdefault("PAAS_HTTPS_BIND", "127.0.0.1")

APP_TEMPLATE = "flask-hello"
TIMEOUT = 600
DOCKERFILE = """FROM {stack}
ENV BENCH_RUN={run}
RUN python3 -m venv /venv
{ca}WORKDIR /app
COPY requirements.txt .
RUN /venv/bin/pip install --disable-pip-version-check -r requirements.txt
COPY . .
ENV PORT=5000 DYNO=web.1
CMD ["/venv/bin/gunicorn", "--bind", "0.0.0.0:5000", "--workers", "2", "app:app"]
"""


def http_get(port: int, host: str | None = None) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Host": host} if host else {})
        resp = conn.getresponse()
        return resp.read().decode() if resp.status == 200 else ""
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        conn.close()


def wait_until(fetch: Callable[[], str], expected: str, t0: float, stop: threading.Event) -> float | None:
    """Seconds from t0 until fetch() returns `expected` (polled every 20 ms), or None if stopped."""
    while not stop.is_set() and time.monotonic() - t0 < TIMEOUT:
        if fetch() == expected:
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


PHASE_LINE = re.compile(r"phase app=(\S+) name=(\S+) start=([\d.]+) end=([\d.]+)")
# (label, phase names): how a push's phases are shown; "+" rows are parts of the row above.
PUSH_ROWS = [
    ("SSH + pack (push start .. update hook)", "-pack"),
    ("+ pack process start (imports, store)", "startup"),
    ("before the build (tree check, lock, app)", "-prebuild"),
    ("build (total)", "build"),
    ("+ dependency layer lookup", "build.deps"),
    ("+ source tar", "build.tar"),
    ("+ build container create", "build.app.create"),
    ("+ copy into it", "build.app.copy"),
    ("+ run (start .. exit)", "build.app.run"),
    ("+ commit", "build.commit"),
    ("image -> release (store, settings)", "-release"),
    ("container start", "deploy.start"),
    ("checks (answers HTTP)", "deploy.checks"),
    ("router: new beside old (in the settle)", "deploy.route.both"),
    ("router serves it (bench sees it)", "-served"),
    ("settle (rest of it)", "deploy.settle"),
    ("router: old ones out (after serving)", "deploy.route"),
    ("old-process stop (after serving)", "deploy.stop"),
]
DOCKERFILE_ROWS = [
    ("docker build", "build"),
    ("container start (docker run)", "start"),
    ("answers on its port", "answer"),
]


def read_phases(log_paths: list[Path], app: str, since: float) -> dict[str, tuple[float, float]]:
    """The timing lines of `app` logged since `since` (wall clock): name -> (start, end) offsets."""
    found: dict[str, tuple[float, float]] = {}
    for path in log_paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            m = PHASE_LINE.search(line)
            if m and m.group(1) == app and float(m.group(3)) >= since - 0.05:
                found[m.group(2)] = (float(m.group(3)) - since, float(m.group(4)) - since)
    return found


def push_breakdown(phases: dict[str, tuple[float, float]], served: float) -> dict[str, float]:
    """Seconds per row of PUSH_ROWS (absent phases are left out)."""
    out = {name: end - start for name, (start, end) in phases.items()}
    if "pack" in phases:
        out["-pack"] = phases["pack"][1]
        if "build" in phases:
            out["-prebuild"] = phases["build"][0] - phases["pack"][1]
    if "build" in phases and "deploy.start" in phases:
        out["-release"] = phases["deploy.start"][0] - phases["build"][1]
    first_route = phases.get("deploy.route.both") or phases.get("deploy.route")
    if first_route:  # from the first switch that sends it traffic
        out["-served"] = max(0.0, served - first_route[1])
    return out


def print_breakdown(title: str, rows: list[tuple[str, str]], runs: list[dict[str, float]]) -> None:
    print(f"\n{title} (median of {len(runs)} code-only run(s), s)")
    for label, key in rows:
        values = [r[key] for r in runs if key in r]
        if values:
            print(f"  {label:40}{statistics.median(values):>8.3f}")


def expected_body(version: int) -> str:
    return f"Hello from web.1 version {version}\n"


class PushPath:
    """(a): git push to a paas server; the clock stops when the router serves the new version."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.server = PaasServer(root).start_with_key("bench")
        self.app = f"bench-{uuid.uuid4().hex[:6]}"
        self.src = self.server.make_repo(APP_TEMPLATE, self.app)
        # a dependency set no earlier run has seen: the first deploy is cold
        with open(self.src / "requirements.txt", "a") as fh:
            fh.write(f"# bench {self.app}\n")
        self.server.git(self.src, "commit", "-qam", "bench")
        self.server.git(self.src, "remote", "add", "paas", f"paas:{self.app}")

    def deploy(self, version: int) -> float:
        if version > 1:
            (self.src / "VERSION").write_text(f"{version}\n")
            self.server.git(self.src, "commit", "-qam", f"v{version}")
        host = f"{self.app}.localhost"
        stop = threading.Event()
        result: list[float | None] = []
        wall0 = time.time()
        t0 = time.monotonic()
        poller = threading.Thread(
            target=lambda: result.append(
                wait_until(lambda: http_get(self.server.http_port, host), expected_body(version), t0, stop)
            )
        )
        poller.start()
        push = self.server.git(self.src, "push", "-q", "paas", "main", timeout=TIMEOUT)
        if push.returncode != 0:
            stop.set()
            poller.join()
            raise SystemExit(f"push failed:\n{push.output}")
        poller.join()
        if result[0] is None:
            raise SystemExit("the new version never answered through the router")
        logs = [self.server.data_dir / "paas.log", self.server.log_path]
        self.last_phases = push_breakdown(read_phases(logs, self.app, wall0), result[0])
        return result[0]

    def close(self) -> None:
        shutdown(self.server)


class DockerfilePath:
    """(b): docker build + docker run through the SDK; the clock stops when the container answers."""

    def __init__(self, root: Path, stack_image: str) -> None:
        self.client = docker.from_env()
        self.dir = root / "dockerfile-app"
        shutil.copytree(APPS_DIR / APP_TEMPLATE, self.dir)
        self.tag = f"paas-bench/dockerfile-{uuid.uuid4().hex[:6]}"
        ca = ""
        bundle = os.environ.get("PAAS_BUILD_CA_BUNDLE")
        if bundle:
            shutil.copy(bundle, self.dir / "ca.crt")
            ca = "COPY ca.crt /ca.crt\nENV PIP_CERT=/ca.crt\n"
        with open(self.dir / "requirements.txt", "a") as fh:
            fh.write(f"# bench {self.tag}\n")
        self.stack_image, self.ca = stack_image, ca
        self.write_dockerfile(self.tag)
        self.containers: list = []
        self.last_phases: dict[str, float] = {}

    def write_dockerfile(self, run: str) -> None:
        """A new `run` makes every layer after FROM cold in docker's build cache."""
        (self.dir / "Dockerfile").write_text(DOCKERFILE.format(stack=self.stack_image, ca=self.ca, run=run))

    def warm_up(self) -> None:
        """One untimed build: whatever caches sit on the way to the package index are warm for both
        paths alike, and docker's cache stays cold for the timed build (another BENCH_RUN)."""
        self.write_dockerfile(f"warm-up-{self.tag}")
        image, _logs = self.client.images.build(
            fileobj=self._context(), custom_context=True, rm=True, pull=False
        )
        self.client.images.remove(image.id, force=True)
        self.write_dockerfile(self.tag)

    def _context(self) -> io.BytesIO:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(self.dir, arcname=".")
        buf.seek(0)
        return buf

    def deploy(self, version: int) -> float:
        (self.dir / "VERSION").write_text(f"{version}\n")
        t0 = time.monotonic()
        image, _logs = self.client.images.build(
            fileobj=self._context(), custom_context=True, tag=self.tag, rm=True, pull=False
        )
        built = time.monotonic()
        container = self.client.containers.run(
            image.id, detach=True, ports={"5000/tcp": ("127.0.0.1", None)}, init=True
        )
        self.containers.append(container)
        container.reload()
        port = int(container.attrs["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"])
        started = time.monotonic()
        elapsed = wait_until(lambda: http_get(port), expected_body(version), t0, threading.Event())
        if elapsed is not None:
            self.last_phases = {
                "build": built - t0,
                "start": started - built,
                "answer": elapsed - (started - t0),
            }
        if elapsed is None:
            raise SystemExit(f"the Dockerfile container never answered: {container.logs()[-500:]!r}")
        for old in self.containers[:-1]:
            old.remove(force=True)
        self.containers = self.containers[-1:]
        return elapsed

    def close(self) -> None:
        for c in self.containers:
            c.remove(force=True)
        try:
            self.client.images.remove(self.tag, force=True)
        except docker.errors.DockerException:
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="code-only redeploys to take the median of")
    args = parser.parse_args()
    client = docker.from_env()
    if not stack.stack_exists(client):
        raise SystemExit("the stack image is missing: run `paas stack:build` (or `make test`) first")
    root = Path(tempfile.mkdtemp(prefix="paas-bench-"))
    push = dockerfile = None
    try:
        print("-----> Setting up a paas server and the Dockerfile app", flush=True)
        push = PushPath(root / "paas")
        dockerfile = DockerfilePath(root, stack.DEFAULT_STACK.image)
        print("-----> Warming the way to the package index (untimed build)", flush=True)
        dockerfile.warm_up()
        print("-----> First deploy (cold: a new app; docker's build cache unused)", flush=True)
        first_b = dockerfile.deploy(1)
        first_a = push.deploy(1)
        print(f"       git push {first_a:.2f} s, Dockerfile {first_b:.2f} s", flush=True)
        redeploys_a, redeploys_b = [], []
        phases_a, phases_b = [], []
        for i in range(args.runs):
            print(f"-----> Code-only change {i + 1}/{args.runs}", flush=True)
            redeploys_a.append(push.deploy(i + 2))
            phases_a.append(push.last_phases)
            redeploys_b.append(dockerfile.deploy(i + 2))
            phases_b.append(dockerfile.last_phases)
            print(f"       git push {redeploys_a[-1]:.2f} s, Dockerfile {redeploys_b[-1]:.2f} s", flush=True)
        code_a, code_b = statistics.median(redeploys_a), statistics.median(redeploys_b)
        print_breakdown("git push: where a code-only push spends its time", PUSH_ROWS, phases_a)
        print_breakdown("Dockerfile: where a code-only redeploy spends its time", DOCKERFILE_ROWS, phases_b)
        first_ratio, code_ratio = first_a / first_b, code_a / code_b
        print()
        print(f"{'':28}{'git push':>10}{'Dockerfile':>12}{'ratio':>8}   target")
        print(f"{'first deploy (s)':28}{first_a:>10.2f}{first_b:>12.2f}{first_ratio:>8.2f}   ratio <= 0.8")
        print(f"{'code-only redeploy (s)':28}{code_a:>10.2f}{code_b:>12.2f}{code_ratio:>8.2f}   ratio <= 1.5")
        ok = first_ratio <= 0.8 and code_ratio <= 1.5
        print(f"\nTargets {'met' if ok else 'NOT met'}.")
        print(f"ratios: first={first_ratio:.2f} code_only={code_ratio:.2f}")
        return 0
    finally:
        for path in (push, dockerfile):
            if path is not None:
                path.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
