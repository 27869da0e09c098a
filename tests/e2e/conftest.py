"""End-to-end fixtures: a real `paas server` (real dockerd, nginx, OpenSSH client, git)."""

from __future__ import annotations

import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
APPS_DIR = Path(__file__).parent / "apps"
PAAS_BIN = str(Path(sys.executable).with_name("paas"))


def free_port() -> int:
    """A port free now and below the kernel's ephemeral range. A port the kernel hands out for
    bind(0) is in that range, where any process's outgoing connection may take it before the
    server binds it (a full run saw a server refuse to start on "Address already in use")."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class PaasServer:
    """A running `paas server` on loopback high ports with its own data dir and a client key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.ssh_port = free_port()
        self.http_port = free_port()
        self.web_port = free_port()
        self.https_port = free_port()
        self.key = root / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        self.ssh_config = root / "ssh_config"
        self.ssh_config.write_text(
            "Host paas\n"
            "  HostName 127.0.0.1\n"
            f"  Port {self.ssh_port}\n"
            "  User paas\n"
            f"  IdentityFile {self.key}\n"
            "  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n"
            f"  UserKnownHostsFile {root / 'known_hosts'}\n"
            "  LogLevel ERROR\n"
            "  BatchMode yes\n"
        )
        self.env = {
            **os.environ,
            "PAAS_DATA_DIR": str(self.data_dir),
            "PAAS_SSH_PORT": str(self.ssh_port),
            "PAAS_SSH_BIND": "127.0.0.1",
            "PAAS_HTTP_PORT": str(self.http_port),
            "PAAS_HTTP_BIND": "127.0.0.1",
            "PAAS_HTTPS_PORT": str(self.https_port),  # every test server its own (443 is one)
            "PAAS_HTTPS_BIND": "127.0.0.1",
            # Never the real Let's Encrypt from a test: a test that wants ACME starts pebble.
            "PAAS_ACME_DIRECTORY": "https://127.0.0.1:9/directory",
            "PAAS_WEB_PORT": str(self.web_port),
            "PAAS_BOOT_TIMEOUT": "30",
            # Every server whose engine is a swarm manager (this host's is, for the suite) closes
            # the swarm's ports to hosts that are not nodes: the simulated hosts of every test,
            # about to join, live on docker0.
            "PAAS_SWARM_JOIN_ALLOW": "172.17.0.0/16",
            "PAAS_STOP_TIMEOUT": "5",
            "PAAS_RECONCILE_SECONDS": "1",
            # The egress policy is the host's, one for every server on it with this pool: each
            # server writes it as it starts, so all deny the private range test_egress.py
            # attacks (one that did not would open it until the egress test's server put its
            # range back).
            "PAAS_EGRESS_DENY": "10.253.0.0/16",
            "GIT_SSH_COMMAND": f"ssh -F {self.ssh_config}",
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
        }
        self.proc: subprocess.Popen | None = None
        self.log_path = root / "server.log"

    def host(self, *args: str, input: str | None = None) -> Result:
        """`paas <args>` on the host."""
        p = subprocess.run([PAAS_BIN, *args], env=self.env, capture_output=True, text=True, input=input)
        return Result(p.returncode, p.stdout, p.stderr)

    def start_with_key(self, name: str = "alice") -> PaasServer:
        """Allow this server's client key (the first key: an admin) under `name`, then start."""
        added = self.host("ssh-keys:add", name, str(self.key) + ".pub")
        if added.returncode != 0:
            raise RuntimeError(f"cannot add the client key: {added.output}")
        self.start()
        return self

    def start(self) -> None:
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen([PAAS_BIN, "server"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "paas is ready" in self.log_path.read_text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"paas server did not start:\n{self.log_path.read_text()}")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def ssh(self, *args: str, key: Path | None = None, timeout: float = 120) -> Result:
        if key is None:
            cmd = ["ssh", "-F", str(self.ssh_config), "paas"]
        else:  # only this key is offered
            cmd = [
                "ssh",
                "-F",
                "/dev/null",
                "-p",
                str(self.ssh_port),
                "-i",
                str(key),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                f"UserKnownHostsFile={self.root / 'known_hosts'}",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                "paas@127.0.0.1",
            ]
        p = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout)
        return Result(p.returncode, p.stdout, p.stderr)

    def git(self, cwd: Path, *args: str, timeout: float = 600) -> Result:
        p = subprocess.run(
            ["git", *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        return Result(p.returncode, p.stdout, p.stderr)

    def get(self, host: str, path: str = "/") -> tuple[int, str]:
        """A request through the nginx router, with the given Host header."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            conn.request("GET", path, headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def add_user(self, name: str, password: str, admin: bool = False) -> None:
        added = self.host("users:add", name, *(["--admin"] if admin else []), input=password + "\n")
        assert added.returncode == 0, added.output

    def token(self, user: str) -> str:
        created = self.host("tokens:create", user)
        assert created.returncode == 0, created.output
        return created.stdout.strip()

    def deploy_new_app(self, template: str, prefix: str) -> str:
        """A new app from tests/e2e/apps/<template>, pushed to main and deployed; its name."""
        return self.deploy_new_repo(template, prefix)[0]

    def deploy_new_repo(self, template: str, prefix: str) -> tuple[str, Path]:
        """deploy_new_app, with the work tree it pushed from (for tests that push again)."""
        app = unique_app(prefix)
        src = self.make_repo(template, app)
        self.git(src, "remote", "add", "paas", f"paas:{app}")
        pushed = self.git(src, "push", "paas", "main")
        assert pushed.returncode == 0, pushed.output
        return app, src

    def make_repo(self, template: str, name: str) -> Path:
        """A git work tree copied from tests/e2e/apps/<template>, with one commit."""
        dest = self.root / "src" / name
        shutil.copytree(APPS_DIR / template, dest)
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "first"]):
            assert self.git(dest, *args).returncode == 0
        return dest


def unique_app(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# The session's shared server holds the apps of every file its worker runs, so a user's apps pile
# up (carol scaling alice's app once found alice at 17 processes, past the default quota of 10,
# depending on which files had run first). Quotas are attacked on servers of their own
# (test_quotas.py); here they are out of the way.
ROOMY_QUOTAS = {
    "PAAS_QUOTA_APPS": "1000",
    "PAAS_QUOTA_PROCESSES": "1000",
    "PAAS_QUOTA_MEMORY": "1000g",
    "PAAS_QUOTA_ONEOFFS": "100",
}


@pytest.fixture(scope="session")
def paas(tmp_path_factory: pytest.TempPathFactory):
    with running_server(tmp_path_factory.mktemp("paas"), env=ROOMY_QUOTAS) as server:
        yield server


@contextmanager
def running_server(
    root: Path, key_name: str = "alice", env: dict[str, str] | None = None
) -> Iterator[PaasServer]:
    """A started server with its client key allowed; stopped and cleaned up afterwards."""
    server = PaasServer(root)
    server.env.update(env or {})
    try:
        yield server.start_with_key(key_name)
    finally:
        shutdown(server)


def _image_tags(client: docker.DockerClient, reference: str) -> list[str]:
    """The tags of the images matching `reference`, from one listing (images.list inspects each
    image it lists: one that a test on another worker removes meanwhile fails the listing)."""
    return [
        tag
        for image in client.api.images(filters={"reference": reference})
        for tag in image.get("RepoTags") or []
    ]


def shutdown(server: PaasServer) -> None:
    """Stop the server (kill it if it will not stop) and always remove what the test made."""
    try:
        if server.proc and server.proc.poll() is None:
            try:
                server.stop()
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()
    finally:
        cleanup_instance(server)


def dashboard_pid(server: PaasServer) -> int | None:
    """The dashboard's gunicorn master, if one runs for this server."""
    try:
        pid = int((server.data_dir / "web.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _exists(client: docker.DockerClient, container_id: str) -> bool:
    try:
        client.containers.get(container_id)
    except docker.errors.NotFound:
        return False
    return True


def cleanup_instance(server: PaasServer) -> None:
    """Remove the containers, images and volumes this test instance made (and a leftover nginx
    or dashboard)."""
    from paas.settings import Settings

    pidfile = server.data_dir / "nginx" / "run" / "nginx.pid"
    try:
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)  # master stops its workers
    except (OSError, ValueError):
        pass
    pid = dashboard_pid(server)  # gunicorn, left behind when a test killed the server with SIGKILL
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
    try:  # and the dashboard's evented gunicorn for live streams
        streams = int((server.data_dir / "web-streams.pid").read_text())
        if b"paas-web-streams" in Path(f"/proc/{streams}/cmdline").read_bytes():
            os.kill(streams, signal.SIGTERM)
    except (OSError, ValueError):
        pass

    instance = Settings(data_dir=server.data_dir).instance_id
    client = docker.from_env()
    for c in client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"paas.instance={instance}"}
    ):
        try:
            c.remove(force=True)
        except docker.errors.NotFound:
            pass  # gone meanwhile: a swarm task's container goes with its removed service
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # "removal ... already in progress": the server's own, as it stopped
                raise
            wait_for(lambda c=c: not _exists(client, c.id), timeout=60, interval=0.5)
    for tag in _image_tags(client, "paas/app-*"):
        if tag.endswith(f"-{instance}"):
            try:
                client.images.remove(tag, force=True)
            except docker.errors.ImageNotFound:
                pass
    for v in client.volumes.list(filters={"name": f"paas-cache-{instance}"}):
        v.remove(force=True)
    for v in client.volumes.list(filters={"label": f"paas.instance={instance}"}):  # backing services' data
        v.remove(force=True)
    for n in client.networks.list(filters={"label": f"paas.instance={instance}"}):
        try:
            n.remove()
        except docker.errors.DockerException:  # a container of another test still attached
            pass


@pytest.fixture
def own_server(tmp_path: Path):
    """A server of the test's own, for tests that stop, kill or restart it."""
    with running_server(tmp_path) as server:
        yield server


def wait_for(predicate, timeout: float = 30, interval: float = 0.2):  # type: ignore[no-untyped-def]
    """Poll until predicate() is truthy; return its value (or the last one on timeout)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def restart_dockerd(log_path: Path) -> None:
    """Restart the Docker engine the way it runs here (systemd, or a plain dockerd process).

    Only from a test marked `alone`, which scripts/test.sh runs with nothing beside it: a restart
    stops every other test's containers."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        raise RuntimeError("restart_dockerd under pytest-xdist: mark the test @pytest.mark.alone")
    if (
        Path("/run/systemd/system").is_dir()
        and subprocess.run(["systemctl", "is-active", "--quiet", "docker"]).returncode == 0
    ):
        subprocess.run(["systemctl", "restart", "docker"], check=True)
    else:
        pid = int(
            subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, check=True).stdout.split()[0]
        )
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 90
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            try:  # a dockerd an earlier restart of this session started is our child: reap it
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.2)
        with open(log_path, "ab") as log:
            subprocess.Popen(
                [a.decode() for a in argv],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("dockerd did not come back")


@contextmanager
def docker_rule_ahead(network: docker.models.networks.Network) -> Iterator[None]:
    """Docker's own rule for `network`'s bridge (`-i br-… ! -o br-… -j ACCEPT`) on top of FORWARD,
    above the jump to DOCKER-USER: where docker leaves it when networks are made side by side."""
    bridge = f"br-{network.id[:12]}"
    rule = ["-i", bridge, "!", "-o", bridge, "-j", "ACCEPT"]
    subprocess.run(["iptables", "-w", "-I", "FORWARD", "1", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-w", "-D", "FORWARD", *rule], capture_output=True)
