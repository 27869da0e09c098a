"""`paas server` lifecycle: clean stop on SIGTERM, app containers outlive it, routes come back."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import docker

from tests.e2e.conftest import PaasServer, unique_app


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

    assert server.stop() == 0
    assert "stopping (app containers keep running)" in server.log_path.read_text()
    deadline = time.monotonic() + 10
    while nginx_pids(server.data_dir / "nginx") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert nginx_pids(server.data_dir / "nginx") == []
    client = docker.from_env()
    [container] = client.containers.list(filters={"label": f"paas.app={app}"})
    assert container.status == "running"

    # The host key persists across restarts, and the app is routed again at start.
    key_before = (server.data_dir / "ssh_host_ed25519_key").read_bytes()
    server.start()
    assert (server.data_dir / "ssh_host_ed25519_key").read_bytes() == key_before
    assert server.get(f"{app}.localhost") == (200, "Hello from web.1 version 1\n")
