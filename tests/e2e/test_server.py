"""`paas server` lifecycle: clean stop on SIGTERM, app containers outlive it, routes come back."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import docker

from tests.e2e.conftest import PaasServer, dashboard_pid, unique_app, wait_for


def nginx_pids(prefix: Path) -> list[str]:
    out = subprocess.run(
        ["pgrep", "-f", f"nginx: master process .* -p {prefix}"], capture_output=True, text=True
    )
    return out.stdout.split()


def test_sigterm_stops_cleanly_apps_keep_running_and_routes_return(own_server: PaasServer) -> None:
    server = own_server
    log = server.log_path.read_text()
    assert f"SSH receiver listening on 127.0.0.1:{server.ssh_port}" in log
    assert f"nginx router listening on 127.0.0.1:{server.http_port}" in log
    assert nginx_pids(server.data_dir / "nginx")

    app = unique_app("keep")
    src = server.make_repo("flask-hello", app)
    server.git(src, "remote", "add", "paas", f"paas:{app}")
    pushed = server.git(src, "push", "paas", "main")
    assert pushed.returncode == 0, pushed.output
    assert server.get(f"{app}.localhost")[0] == 200

    nginx_before = nginx_pids(server.data_dir / "nginx")
    assert server.stop() == 0
    assert "stopping (app containers and the router keep running)" in server.log_path.read_text()
    # No server runs, yet the app is served: the router stays for the next start to adopt.
    assert nginx_pids(server.data_dir / "nginx") == nginx_before
    assert server.get(f"{app}.localhost")[0] == 200
    client = docker.from_env()
    [container] = client.containers.list(filters={"label": f"paas.app={app}"})
    assert container.status == "running"
    stopped = server.host("router:stop")
    assert stopped.returncode == 0 and "router stopped" in stopped.stdout, stopped.output
    deadline = time.monotonic() + 10
    while nginx_pids(server.data_dir / "nginx") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert nginx_pids(server.data_dir / "nginx") == []

    # The host key persists across restarts, and the app is routed again at start.
    key_before = (server.data_dir / "ssh_host_ed25519_key").read_bytes()
    head = server.data_dir / "repos" / f"{app}.git" / "HEAD"
    head.write_text("ref: refs/heads/master\n")  # as repos were made before HEAD followed pushes
    server.start()
    assert head.read_text() == "ref: refs/heads/main\n"  # fixed at start: `git clone` checks out main
    assert (server.data_dir / "ssh_host_ed25519_key").read_bytes() == key_before
    assert server.get(f"{app}.localhost") == (200, "Hello from web.1 version 1\n")


def test_the_dashboard_is_supervised_routed_and_stopped(own_server: PaasServer) -> None:
    server = own_server
    log = server.log_path.read_text()
    assert (
        f"dashboard listening on http://127.0.0.1:{server.web_port} and http://paas.localhost:{server.http_port}"
        in log
    )
    status, body = server.get("paas.localhost", "/login")
    assert status == 200 and "Log in" in body
    assert server.get("paas.localhost", "/")[0] == 302  # nothing else without a session
    first = dashboard_pid(server)
    assert first is not None

    # gunicorn dies: the server starts another one.
    os.kill(first, signal.SIGKILL)

    def restarted() -> bool:
        pid = dashboard_pid(server)
        if pid in (None, first):
            return False
        try:  # the new master has its port before its workers load the app: a slow box waits
            return server.get("paas.localhost", "/login")[0] == 200
        except TimeoutError:
            return False

    assert wait_for(restarted, timeout=45, interval=0.5)
    assert "the dashboard exited; restarted it" in server.log_path.read_text()

    # SIGTERM stops it with the server.
    second = dashboard_pid(server)
    assert server.stop() == 0
    assert second is not None and not Path(f"/proc/{second}").exists()
