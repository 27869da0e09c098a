"""The workers' swarm ports: what the join lines' firewall script and the node guard's task run,
with fake iptables that record what they are given (the e2e attack is in test_swarm_nodes.py)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import docker
import pytest

from paas.buildpacks.service_images import image_for
from paas.core.container import LOG_OPTIONS
from paas.errors import PaasError
from paas.plugins import plugins
from paas.settings import Settings

plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
from paas_plugins.swarm.scheduler import node_guard, registry, swarm_cluster  # noqa: E402

NODES = {"172.17.0.1", "10.0.0.7", "10.0.0.5"}


def fake_tools(
    bin_dir: Path, log: Path, tables: dict[str, bool], extra: dict[str, str] | None = None
) -> dict:
    """iptables-like commands that log their arguments and stdin; `tables[name]`: whether
    `name -S DOCKER-USER` finds docker's chain (which backend docker uses); `-S PAAS-SWARM` prints
    the file `<log>.chain` (no file: no chain); `-C` never finds a rule."""
    bin_dir.mkdir()
    scripts = dict(extra or {})
    for name, has_docker in tables.items():
        scripts[name] = (
            '#!/bin/sh\necho "${0##*/} $*" >> "$LOG"\n'
            f'case " $*" in *" -S DOCKER-USER"*) exit {0 if has_docker else 1};; *" -C "*) exit 1;;\n'
            '  *" -S PAAS-SWARM"*) [ -f "$LOG.chain" ] || exit 1; cat "$LOG.chain";; esac\n'
        )
        scripts[f"{name}-restore"] = '#!/bin/sh\necho "${0##*/} $*" >> "$LOG"\ncat > "$LOG.restore"\n'
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log)}


def test_the_firewall_script_closes_the_swarm_ports_to_all_but_the_manager_and_the_nodes(
    tmp_path: Path,
) -> None:
    """A new host's swarm ports answer the nodes known when its lines were printed, from the first
    line on (and at each boot, until its guard task writes the nodes of now)."""
    script = tmp_path / "firewall"
    script.write_text(swarm_cluster.firewall_script("172.17.0.1", (30000, 30999), {"10.0.0.7", "10.0.0.5"}))
    log = tmp_path / "log"
    env = fake_tools(tmp_path / "bin", log, {"iptables": True})
    subprocess.run(["sh", str(script)], env=env, check=True, timeout=20)
    assert Path(f"{log}.restore").read_text() == swarm_cluster.swarm_ports_restore(NODES)
    calls = log.read_text()
    for jump in swarm_cluster.swarm_ports_jumps():
        assert f"iptables -I {jump}\n" in calls
    assert "-A PAAS-SWARM -s 10.0.0.5 -j RETURN" in swarm_cluster.swarm_ports_restore(NODES)
    assert swarm_cluster.swarm_ports_restore(NODES).endswith("-A PAAS-SWARM -j DROP\nCOMMIT\n")


def test_the_firewall_script_leaves_a_chain_that_is_there_alone(tmp_path: Path) -> None:
    """Lines pasted again, or a boot after the node guard's task wrote the nodes of now: the
    older list of the lines must not replace it."""
    script = tmp_path / "firewall"
    script.write_text(swarm_cluster.firewall_script("172.17.0.1", (30000, 30999), set()))
    log = tmp_path / "log"
    env = fake_tools(tmp_path / "bin", log, {"iptables": True})
    Path(f"{log}.chain").write_text("-N PAAS-SWARM\n-A PAAS-SWARM -s 10.0.0.9/32 -j RETURN\n")
    subprocess.run(["sh", str(script)], env=env, check=True, timeout=20)
    assert not Path(f"{log}.restore").exists()
    assert f"iptables -I {swarm_cluster.swarm_ports_jumps()[0]}\n" in log.read_text()  # jumps still


def test_the_firewall_script_of_an_ipv6_manager_leaves_the_swarm_chain_alone() -> None:
    script = swarm_cluster.firewall_script("fd00::1", (30000, 30999), {"fd00::7"})
    assert "PAAS-SWARM" not in script and "iptables-restore" not in script


def run_guard(
    tmp_path: Path, tables: dict[str, bool], nodes: set[str], chain: str | None = None
) -> tuple[subprocess.CompletedProcess, str]:
    """The guard's script once round its loop: its `sleep` ends the task as docker would.
    `chain`: what `-S PAAS-SWARM` prints on the host (None: there is no such chain)."""
    log = tmp_path / "log"
    env = fake_tools(tmp_path / "bin", log, tables, {"sleep": '#!/bin/sh\nkill -TERM "$PPID"\n'})
    if chain is not None:
        Path(f"{log}.chain").write_text(chain)
    for item in node_guard.env(nodes):
        key, _, value = item.partition("=")
        env[key] = value
    script = tmp_path / "guard"
    script.write_text(node_guard.GUARD_SCRIPT)
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=20)
    return done, log.read_text()


@pytest.mark.parametrize("backend", ["iptables-nft", "iptables-legacy"])
def test_the_guard_writes_the_chain_with_the_iptables_docker_uses(tmp_path: Path, backend: str) -> None:
    tables = {"iptables-nft": backend == "iptables-nft", "iptables-legacy": backend == "iptables-legacy"}
    done, calls = run_guard(tmp_path, tables, NODES)
    assert done.returncode == 0, done.stderr  # SIGTERM: a clean stop, the rules stay
    assert f"{backend}-restore -w --noflush" in calls
    assert Path(f"{tmp_path / 'log'}.restore").read_text() == swarm_cluster.swarm_ports_restore(NODES)
    for jump in swarm_cluster.swarm_ports_jumps():
        assert f"{backend} -w -C {jump}\n" in calls and f"{backend} -w -I {jump}\n" in calls
    other = "iptables-legacy" if backend == "iptables-nft" else "iptables-nft"
    assert f"{other}-restore" not in calls and f"{other} -w -I" not in calls


def test_the_guard_leaves_a_chain_that_is_as_it_should_be(tmp_path: Path) -> None:
    """Rewriting it every 30 s would reset its counters and, on a legacy host, rewrite the whole
    table beside dockerd's own changes: only a chain that differs is written."""
    nft = {"iptables-nft": True, "iptables-legacy": False}
    rules = [line for line in swarm_cluster.swarm_ports_restore(NODES).splitlines() if line.startswith("-A ")]
    # as `-S` prints them: a lone address with /32
    listed = "-N PAAS-SWARM\n" + "".join(re.sub(r"(-s \S+) ", r"\1/32 ", r) + "\n" for r in rules)
    assert "-A PAAS-SWARM -s 10.0.0.7/32 -j RETURN\n" in listed
    (tmp_path / "same").mkdir()
    done, calls = run_guard(tmp_path / "same", nft, NODES, listed)
    assert done.returncode == 0, done.stderr
    assert "-restore" not in calls and "iptables-nft -w -I INPUT" in calls  # the jumps are checked
    (tmp_path / "stale").mkdir()
    stale = listed.replace("-A PAAS-SWARM -s 10.0.0.7/32 -j RETURN\n", "")  # a node joined since
    done, calls = run_guard(tmp_path / "stale", nft, NODES, stale)
    assert "iptables-nft-restore -w --noflush" in calls


def test_the_guard_refuses_a_host_whose_docker_has_no_chain(tmp_path: Path) -> None:
    done, calls = run_guard(tmp_path, {"iptables-nft": False, "iptables-legacy": False}, NODES)
    assert done.returncode == 1 and "DOCKER-USER" in done.stderr
    assert "-restore" not in calls


def test_the_guard_runs_on_the_workers_our_apps_may_use_with_the_hosts_network() -> None:
    spec = node_guard.spec("reg:5001/paas/service-node-guard@sha256:ab", NODES, "i1", ("node.labels.x==yes",))
    assert spec["constraints"] == ["node.role==worker", "node.labels.x==yes"]
    assert spec["networks"] == ["host"] and spec["cap_add"] == ["NET_ADMIN", "NET_RAW"]
    assert spec["mode"] == {"global": {}} and spec["update_config"]["Parallelism"] == 0
    assert spec["env"][0] == f"PAAS_SWARM_RULES={swarm_cluster.swarm_ports_restore(NODES)}"
    assert spec["log_driver"] == "json-file" and spec["log_driver_options"] == LOG_OPTIONS  # its log capped


class FakeService:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.updates: list[dict] = []

    @property
    def attrs(self) -> dict:
        return {
            "Spec": {
                "TaskTemplate": {
                    "ContainerSpec": {
                        "Image": self.spec["image"],
                        "Env": self.spec["env"],
                        "CapabilityAdd": self.spec["cap_add"],
                    },
                    "Placement": {"Constraints": self.spec["constraints"]},
                }
            }
        }

    def update(self, **kwargs: object) -> None:
        self.updates.append(kwargs)
        self.spec = kwargs


class FakeServices:
    def __init__(self) -> None:
        self.made: dict[str, FakeService] = {}

    def get(self, name: str) -> FakeService:
        if name not in self.made:
            raise docker.errors.NotFound("no such service")
        return self.made[name]

    def create(self, **kwargs: object) -> None:
        if kwargs["image"] == "refused":
            raise docker.errors.APIError("rejected", explanation="invalid image")
        self.made[str(kwargs["name"])] = FakeService(kwargs)


class FakeClient:
    def __init__(self) -> None:
        self.services = FakeServices()


def test_the_guard_service_is_made_once_and_changed_only_when_the_nodes_change() -> None:
    client = FakeClient()
    assert node_guard.ensure(client, "img@sha256:1", NODES, "i1", ())  # type: ignore[arg-type]
    service = client.services.made["paas-i1-node-guard"]
    assert not node_guard.ensure(client, "img@sha256:1", set(NODES), "i1", ())  # type: ignore[arg-type]
    assert service.updates == []
    assert node_guard.ensure(client, "img@sha256:1", NODES - {"10.0.0.7"}, "i1", ())  # type: ignore[arg-type]
    assert "10.0.0.7" not in service.updates[-1]["env"][0]  # a node that left is dropped
    with pytest.raises(PaasError, match="cannot start the node guard on the workers: invalid image"):
        node_guard.ensure(client, "refused", NODES, "i2", ())  # type: ignore[arg-type]


def test_the_registry_cleanup_keeps_the_guards_image(tmp_path: Path) -> None:
    """The join lines pull it by its tag: the registry's GC (every 10 minutes while an app runs
    on the swarm) must not delete it, or lines printed later never join."""
    images = SimpleNamespace(get=lambda name: SimpleNamespace(id="sha256:stack"), list=lambda filters: [])
    client = SimpleNamespace(images=images)
    settings = Settings(data_dir=tmp_path)
    a = registry.RegistryAccess("172.17.0.1:5001", b"")
    keep = registry.wanted_refs(settings, client, a)  # type: ignore[arg-type]
    guard = image_for(settings, client, node_guard.RECIPE)  # type: ignore[arg-type]
    assert registry.remote_ref(a.endpoint, guard) in keep and guard.startswith("paas/service:node-guard-")
