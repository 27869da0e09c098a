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

    .venv/bin/python bench/deploy.py [--runs 3]      (PAAS_BUILD_CA_BUNDLE as for `make test`)
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
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
from tests.e2e.conftest import APPS_DIR, PaasServer, shutdown  # noqa: E402

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
        container = self.client.containers.run(
            image.id, detach=True, ports={"5000/tcp": ("127.0.0.1", None)}, init=True
        )
        self.containers.append(container)
        container.reload()
        port = int(container.attrs["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"])
        elapsed = wait_until(lambda: http_get(port), expected_body(version), t0, threading.Event())
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
        for i in range(args.runs):
            print(f"-----> Code-only change {i + 1}/{args.runs}", flush=True)
            redeploys_a.append(push.deploy(i + 2))
            redeploys_b.append(dockerfile.deploy(i + 2))
            print(f"       git push {redeploys_a[-1]:.2f} s, Dockerfile {redeploys_b[-1]:.2f} s", flush=True)
        code_a, code_b = statistics.median(redeploys_a), statistics.median(redeploys_b)
        print()
        print(f"{'':28}{'git push':>10}{'Dockerfile':>12}{'ratio':>8}   target")
        print(
            f"{'first deploy (s)':28}{first_a:>10.2f}{first_b:>12.2f}{first_a / first_b:>8.2f}   ratio <= 1.3"
        )
        print(
            f"{'code-only redeploy (s)':28}{code_a:>10.2f}{code_b:>12.2f}{code_a / code_b:>8.2f}"
            "   <= 3 s and ratio <= 2.5"
        )
        ok = first_a / first_b <= 1.3 and code_a <= 3 and code_a / code_b <= 2.5
        print(f"\nTargets {'met' if ok else 'NOT met'}.")
        return 0
    finally:
        for path in (push, dockerfile):
            if path is not None:
                path.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
