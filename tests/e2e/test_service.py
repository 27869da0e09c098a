"""Runs as a service: units systemd accepts, a reboot brings every app back, a restart under load
drops nothing, logs stay bounded, a full disk refuses pushes, doctor finds and removes orphans."""

from __future__ import annotations

import http.client
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import docker
import pytest

from paas.settings import Settings
from tests.e2e.conftest import REPO_ROOT, PaasServer, restart_dockerd, shutdown, wait_for


def _serves(server: PaasServer, app: str) -> bool:
    try:
        return server.get(f"{app}.localhost")[0] == 200
    except (OSError, http.client.HTTPException):
        return False


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    rendered = subprocess.run(
        [str(REPO_ROOT / "scripts" / "install.sh"), "render", str(tmp_path), "docker.service"],
        capture_output=True,
        text=True,
    )
    assert rendered.returncode == 0, rendered.stderr
    unit = (tmp_path / "paas.service").read_text()
    assert f"ExecStart={REPO_ROOT}/.venv/bin/paas server" in unit and "KillMode=process" in unit
    for name in ("paas.service", "paas-dockerd.service"):
        verified = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True
        )
        assert verified.returncode == 0, verified.stderr
    # It can fail: a unit systemd would not run is refused.
    (tmp_path / "broken.service").write_text("[Service]\nExecStart=not-a-path\n")
    assert subprocess.run(["systemd-analyze", "verify", str(tmp_path / "broken.service")]).returncode != 0


def test_a_restart_under_steady_load_fails_no_request(own_server: PaasServer) -> None:
    server = own_server
    app = server.deploy_new_app("stdlib-web", "svc")
    failures: list[str] = []
    done = threading.Event()
    count = 0

    def load() -> None:
        nonlocal count
        while not done.is_set():
            try:
                status, _ = server.get(f"{app}.localhost")
                if status != 200:
                    failures.append(f"HTTP {status}")
            except (OSError, http.client.HTTPException) as exc:
                failures.append(exc.__class__.__name__)
            count += 1
            time.sleep(0.01)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(1)
        assert server.stop() == 0  # what `systemctl restart` sends (KillMode=process: the server only)
        time.sleep(1)
        server.start()
        time.sleep(2)
    finally:
        done.set()
        thread.join()
    assert count > 100 and failures == [], f"{len(failures)} of {count} failed: {failures[:5]}"


@pytest.mark.alone  # restarts dockerd
def test_a_simulated_reboot_brings_every_app_back(own_server: PaasServer, tmp_path: Path) -> None:
    server = own_server
    apps = [server.deploy_new_app("stdlib-web", "boot"), server.deploy_new_app("tiny-worker", "bootw")]
    assert server.stop() == 0
    assert server.host("router:stop").returncode == 0
    restart_dockerd(tmp_path / "dockerd.log")  # the machine comes back: dockerd first (its unit)
    # Then the unit's ExecStart, with its EnvironmentFile, as systemd would run it.
    unit = subprocess.run(
        [str(REPO_ROOT / "scripts" / "install.sh"), "render", str(tmp_path), "docker.service"],
        capture_output=True,
        text=True,
    )
    assert unit.returncode == 0
    exec_start = next(
        ln.split("=", 1)[1]
        for ln in (tmp_path / "paas.service").read_text().splitlines()
        if ln.startswith("ExecStart=")
    )
    env_file = tmp_path / "paas.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in server.env.items() if k.startswith("PAAS_")))
    env = {"PATH": os.environ["PATH"], **dict(ln.split("=", 1) for ln in env_file.read_text().splitlines())}
    started = time.monotonic()
    with open(server.log_path, "a") as log:
        server.proc = subprocess.Popen(shlex.split(exec_start), env=env, stdout=log, stderr=subprocess.STDOUT)
    assert wait_for(lambda: _serves(server, apps[0]), timeout=30, interval=0.5)
    instance = Settings(data_dir=server.data_dir).instance_id
    client = docker.from_env()
    assert wait_for(
        lambda: client.containers.list(
            filters={"label": [f"paas.instance={instance}", f"paas.app={apps[1]}"]}
        ),
        timeout=30,
    )
    assert time.monotonic() - started < 30


def test_logs_rotate_with_a_bounded_total() -> None:
    # nginx's workers (www-data) reopen the logs themselves: the folders above must be traversable,
    # as /var/lib/paas is (pytest's tmp folders are 0700).
    root = Path(tempfile.mkdtemp(prefix="paas-logs-"))
    root.chmod(0o711)
    server = PaasServer(root)
    server.env.update({"PAAS_LOG_MAX_BYTES": "20k", "PAAS_LOG_KEEP": "2", "PAAS_LOG_ROTATE_SECONDS": "1"})
    try:
        server.start_with_key()
        app = server.deploy_new_app("stdlib-web", "svc")
        logs = server.data_dir / "nginx" / "logs"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # a noisy app: every request is a line in access.log
            for _ in range(50):
                server.get(f"{app}.localhost", "/" + "x" * 200)
            time.sleep(0.2)
        total = sum(p.stat().st_size for p in logs.glob("access.log*"))
        rotated = sorted(p.name for p in logs.glob("access.log.*"))
        assert rotated == ["access.log.1", "access.log.2"], rotated
        # keep + 1 files of about the limit, plus what one second of traffic adds before a check
        assert total < 3 * 20 * 1024 + 200 * 1024, total
        assert server.get(f"{app}.localhost")[0] == 200  # nginx reopened its log and serves on
        # nginx writes to the new file (its access log is flushed within a second)
        assert wait_for(lambda: (logs / "access.log").stat().st_size > 0, timeout=5)
    finally:
        shutdown(server)
        shutil.rmtree(root, ignore_errors=True)


def test_a_push_is_refused_when_the_disk_is_nearly_full(own_server: PaasServer) -> None:
    server = own_server
    app = server.deploy_new_app("stdlib-web", "svc")
    assert server.stop() == 0
    server.env["PAAS_MIN_FREE_DISK"] = "1000000g"  # more than any disk here has free
    server.start()
    src = server.root / "src" / app
    (src / "VERSION").write_text("2")
    server.git(src, "commit", "-qam", "v2")
    pushed = server.git(src, "push", "paas", "main")
    assert pushed.returncode != 0
    assert "not enough free disk for a build" in pushed.output and "PAAS_MIN_FREE_DISK" in pushed.output
    assert server.get(f"{app}.localhost") == (200, "version 1 web.1\n")  # the old release serves


def test_doctor_reports_health_and_removes_orphans(paas: PaasServer) -> None:
    instance = Settings(data_dir=paas.data_dir).instance_id
    client = docker.from_env()
    orphan = client.volumes.create(f"paas-cache-{instance}-ghost-app")
    try:
        report = paas.host("doctor")
        assert "dockerd    ok" in report.stdout and "ssh        ok" in report.stdout, report.output
        assert f"volume     paas-cache-{instance}-ghost-app (app ghost-app is gone)" in report.stdout
        fixed = paas.host("doctor", "--fix")
        assert f"removed volume paas-cache-{instance}-ghost-app" in fixed.stdout, fixed.output
        assert not client.volumes.list(filters={"name": f"paas-cache-{instance}-ghost-app"})
        # Over SSH for admins (the test key is the first, so an admin).
        over_ssh = paas.ssh("doctor", "--format", "json")
        assert '"dockerd": "ok"' in over_ssh.stdout, over_ssh.output
    finally:
        try:
            orphan.remove(force=True)
        except docker.errors.DockerException:
            pass
