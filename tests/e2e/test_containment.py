"""Attacks from inside app containers: each must be contained (issue: untrusted code stays in its box).

Every attack is bounded (a fork bomb of 1500 children that exit after 20 s, a 1 GiB allocation), so
on a platform without limits it succeeds visibly instead of taking the test machine down.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import threading
import time

import docker
import pytest

from paas.settings import Settings
from tests.e2e.conftest import PaasServer, wait_for


def _containers(paas: PaasServer, app: str, ptype: str = "web") -> list:
    instance = Settings(data_dir=paas.data_dir).instance_id
    labels = [f"paas.instance={instance}", f"paas.app={app}", f"paas.process_type={ptype}"]
    return docker.from_env().containers.list(filters={"label": labels})


def _answers(paas: PaasServer, host: str) -> bool:
    try:
        return paas.get(host, "/")[0] == 200
    except (OSError, http.client.HTTPException):  # a process out of pids drops the connection
        return False


@pytest.fixture(scope="module")
def box(paas: PaasServer) -> str:
    return paas.deploy_new_app("abuse", "box")


@pytest.fixture(scope="module")
def neighbour(paas: PaasServer) -> str:
    return paas.deploy_new_app("stdlib-web", "nb")


def test_every_app_container_is_hardened(paas: PaasServer, box: str) -> None:
    c = _containers(paas, box)[0]
    host = c.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == 256 and host["Memory"] == 512 << 20 and host["MemorySwap"] == 512 << 20
    assert host["NanoCpus"] == 1_000_000_000
    assert host["NetworkMode"] not in ("host", "bridge", "default") and host.get("PidMode", "") == ""
    assert host.get("IpcMode") != "host" and not host.get("Privileged")
    assert not any("docker.sock" in (m.get("Source") or "") for m in c.attrs["Mounts"])
    status, body = paas.get(f"{box}.localhost", "/whoami")
    assert (status, body) == (200, "1000:1000")
    ran = paas.ssh("run", box, "id -u; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status")
    assert ran.returncode == 0, ran.output
    assert (
        ran.stdout.split()[0] == "1000"
        and "0000000000000000" in ran.stdout
        and "NoNewPrivs:\t1" in ran.stdout
    )


@pytest.mark.alone  # the neighbour's answers within a deadline: measured on a quiet machine
def test_a_fork_bomb_is_held_at_the_pids_limit_while_the_neighbour_and_the_host_serve(
    paas: PaasServer, box: str, neighbour: str
) -> None:
    result: dict[str, object] = {}

    def bomb() -> None:
        result["answer"] = paas.get(f"{box}.localhost", "/fork?n=1500&hold=20")

    thread = threading.Thread(target=bomb)
    thread.start()
    served = 0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:  # the neighbour keeps answering during the bomb
        status, _ = paas.get(f"{neighbour}.localhost", "/")
        assert status == 200
        served += 1
        time.sleep(0.05)
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes
    thread.join(timeout=60)
    status, body = result["answer"]  # type: ignore[misc]
    assert status == 200
    assert int(body) < 256, f"the bomb made {body} processes"
    assert served > 20
    assert wait_for(lambda: _answers(paas, f"{box}.localhost"), timeout=60)  # its children exit at 20 s


def test_app_a_cannot_connect_to_app_b_but_reaches_its_own_processes(
    paas: PaasServer, box: str, neighbour: str
) -> None:
    target = _containers(paas, neighbour)[0]
    ip = next(n["IPAddress"] for n in target.attrs["NetworkSettings"]["Networks"].values())
    status, body = paas.get(f"{box}.localhost", f"/connect?host={ip}&port=5000")
    assert (status, body.split(":")[0]) == (200, "refused"), body
    # Its own web process, by name, from a one-off on the app's network.
    own = paas.ssh(
        "run",
        box,
        "python3 -c \"import socket; socket.create_connection(('web', 5000), timeout=3); print('ok')\"",
    )
    assert own.returncode == 0 and own.stdout.strip() == "ok", own.output


def test_a_memory_hog_is_oom_killed_in_its_own_container(paas: PaasServer, box: str) -> None:
    limited = paas.ssh("resource:limit", box, "--process-type", "hog", "--memory", "64m")
    assert limited.returncode == 0, limited.output
    scaled = paas.ssh("apps:scale", box, "hog=1")
    assert scaled.returncode == 0, scaled.output
    seen = wait_for(lambda: "oom-killed" in paas.ssh("ps", box).stdout, timeout=60, interval=0.5)
    assert seen, paas.ssh("ps", box).output
    assert wait_for(lambda: "ps:oom-killed" in paas.ssh("events", "--app", box).stdout, timeout=30)
    status, _ = paas.get(f"{box}.localhost", "/")
    assert status == 200  # the web process of the same app is untouched
    report = paas.ssh("resource:report", box, "--format", "json")
    assert '"memory": "64m"' in report.stdout
    hog = _containers(paas, box, "hog")[0]
    assert hog.attrs["HostConfig"]["Memory"] == 64 << 20
    assert paas.ssh("apps:scale", box, "hog=0").returncode == 0


def test_resource_limit_makes_a_release_and_shows_in_the_containers(paas: PaasServer, neighbour: str) -> None:
    out = paas.ssh("resource:limit", neighbour, "--memory", "300m", "--cpu", "0.5", "--pids", "100")
    assert out.returncode == 0, out.output
    assert "Releasing v" in out.stdout
    host = _containers(paas, neighbour)[0].attrs["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (300 << 20, 500_000_000, 100)
    assert paas.get(f"{neighbour}.localhost", "/")[0] == 200
    for bad, message in [
        (["--memory", "lots"], "invalid memory 'lots'"),
        (["--cpu", "64"], "invalid cpu '64'"),
        (["--pids", "3"], "invalid pids '3'"),
        ([], "give at least one of"),
    ]:
        r = paas.ssh("resource:limit", neighbour, *bad)
        assert r.returncode == 1 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output
    cleared = paas.ssh("resource:limit-clear", neighbour)
    assert cleared.returncode == 0, cleared.output
    host = _containers(paas, neighbour)[0].attrs["HostConfig"]
    assert host["Memory"] == 512 << 20
    assert os.cpu_count()
