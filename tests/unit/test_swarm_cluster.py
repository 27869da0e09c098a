"""The swarm's join lines, node lookup, the registry's certificates and the swarm settings
(pure logic; the e2e tests in tests/e2e/test_swarm_nodes.py run the lines on simulated hosts)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from paas.errors import NotFound, PaasError
from paas.plugins import plugins
from paas.settings import Settings

plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
from paas_plugins.swarm.scheduler import registry, swarm_cluster  # noqa: E402
from paas_plugins.swarm.settings import swarm_settings  # noqa: E402

TOKEN = "SWMTKN-1-abcdef0123456789-0123456789abcdef"


class FakeSwarm:
    attrs = {"JoinTokens": {"Worker": TOKEN, "Manager": "SWMTKN-1-manager"}}

    def reload(self) -> None:
        pass


class FakeAPI:
    def __init__(self, nodes: list[dict]) -> None:
        self._nodes = nodes

    def nodes(self) -> list[dict]:
        return self._nodes

    def tasks(self, filters: dict) -> list[dict]:
        return [
            {"NodeID": "aaa111", "Status": {"State": "running"}},
            {"NodeID": "aaa111", "Status": {"State": "running"}},
            {"NodeID": "bbb222", "Status": {"State": "preparing"}},
        ]


class FakeClient:
    def __init__(self, nodes: list[dict] | None = None) -> None:
        self.swarm = FakeSwarm()
        self.api = FakeAPI(nodes or [])

    def info(self) -> dict:
        return {"Swarm": {"LocalNodeState": "active", "ControlAvailable": True, "NodeID": "aaa111"}}


def node(id: str, host: str, role: str = "worker", state: str = "ready", addr: str = "10.0.0.5") -> dict:
    return {
        "ID": id,
        "Description": {"Hostname": host},
        "Spec": {"Role": role, "Availability": "active"},
        "Status": {"State": state, "Addr": addr},
        **({"ManagerStatus": {"Addr": "172.17.0.1:2377"}} if role == "manager" else {}),
    }


def lines() -> list[str]:
    return swarm_cluster.join_lines(
        FakeClient(),  # type: ignore[arg-type]
        "172.17.0.1",
        "172.17.0.1:5001",
        b"CA PEM\n",
        b"CERT PEM\n",
        b"KEY PEM\n",
        (32768, 60999),
        node="w1",
    )


def test_join_lines_write_the_registry_files_then_docker_config_then_firewall_then_join() -> None:
    out = lines()
    written = {}
    for line in out:
        for m in re.finditer(r"echo ([A-Za-z0-9+/=]+) \| base64 -d > ([^ )]+)", line):
            written[m.group(2)] = base64.b64decode(m.group(1))
    certs = "/etc/docker/certs.d/172.17.0.1:5001"
    assert written[f"{certs}/ca.crt"] == b"CA PEM\n"
    assert written[f"{certs}/client.cert"] == b"CERT PEM\n"
    assert written[f"{certs}/client.key"] == b"KEY PEM\n"
    assert any("(umask 077 && " in line and "client.key" in line for line in out)  # the key is root's
    here = '[ "$(uname -n)" = w1 ]'
    assert out[0].startswith(f"{here} || ")  # lines made for w1 say so anywhere else
    assert out[1].startswith(f"{here} && mkdir -p ") and "client.cert" in out[1]  # and write nothing
    assert out[-1].startswith(f"{here} && ")  # nor join
    script = written[swarm_cluster.FIREWALL_SCRIPT].decode()
    assert script.startswith("#!/bin/sh\n")
    assert "--ctdir ORIGINAL --ctorigdstport 32768:60999 ! -s 172.17.0.1 -j DROP" in script
    assert "iptables -C DOCKER-USER" in script  # idempotent: run again at boot, or by the lines again
    assert swarm_cluster.FIREWALL_SCRIPT in out  # run now
    unit = written[swarm_cluster.FIREWALL_UNIT].decode()  # and at every boot of a systemd host
    assert f"ExecStart={swarm_cluster.FIREWALL_SCRIPT}" in unit and "After=docker.service" in unit
    config = written[swarm_cluster.DOCKER_CONFIG_SCRIPT].decode()  # docker-proxy off, before the rule
    assert swarm_cluster.DAEMON_SETTINGS in config and "systemctl restart docker" in config
    assert json.loads(swarm_cluster.DAEMON_SETTINGS) == {"userland-proxy": False, "no-new-privileges": True}
    assert out.index(swarm_cluster.DOCKER_CONFIG_SCRIPT) < out.index(swarm_cluster.FIREWALL_SCRIPT)
    assert out[-1].endswith(f"docker swarm join --token {TOKEN} 172.17.0.1:2377; }}")
    assert " && { docker info" in out[-1]  # skipped when already in a swarm: the lines can be re-run
    subprocess.run(["sh", "-n", "-c", "\n".join(out)], check=True)  # valid shell, as pasted
    for line in out:
        shlex.split(line)  # every line is valid shell quoting
        if "systemctl" in line:  # hosts without systemd (the simulated ones) run the lines too
            assert line.startswith("if [ -d /run/systemd/system ]; then ")


def test_join_lines_pull_the_stack_before_joining() -> None:
    ref = "172.17.0.1:5001/paas/stack:trixie-0123abcd"
    out = swarm_cluster.join_lines(
        FakeClient(),  # type: ignore[arg-type]
        "172.17.0.1",
        "172.17.0.1:5001",
        b"CA\n",
        b"CERT\n",
        b"KEY\n",
        (32768, 60999),
        prefetch=(ref,),
        node="w1",
    )
    last = out[-1]
    assert last.index(f"docker pull -q {ref}") < last.index("docker swarm join")
    assert " && { docker info" in last  # no join unless the pull succeeded
    subprocess.run(["sh", "-n", "-c", "\n".join(out)], check=True)  # valid shell, as pasted


def test_the_firewall_script_uses_ip6tables_for_an_ipv6_manager() -> None:
    script = swarm_cluster.firewall_script("fd00::1", (30000, 30999))
    assert "ip6tables -I DOCKER-USER" in script and "! -s fd00::1" in script
    assert "\niptables" not in script


def test_the_firewall_script_keeps_the_nodes_tasks_off_every_hosts_swarm_ports() -> None:
    script = swarm_cluster.firewall_script("10.0.0.1", (30000, 30999))
    for proto, ports in (("tcp", "2377,7946"), ("udp", "7946,4789")):
        rule = f"DOCKER-USER -i docker_gwbridge -p {proto} -m multiport --dports {ports}"
        assert f"iptables -C {rule}" in script and f"iptables -I {rule}" in script
    subprocess.run(["sh", "-n", "-c", script], check=True)


def test_nodes_are_listed_with_their_running_tasks() -> None:
    client = FakeClient([node("bbb222", "w1"), node("aaa111", "mgr", role="manager", addr="0.0.0.0")])
    found = swarm_cluster.list_nodes(client)  # type: ignore[arg-type]
    assert [(n.name, n.role, n.tasks, n.is_self) for n in found] == [
        ("mgr", "manager", 2, True),
        ("w1", "worker", 0, False),
    ]
    assert found[0].address == "172.17.0.1"  # a manager's Status.Addr can be 0.0.0.0


def test_find_node_by_name_id_or_prefix_and_refuses_garbage() -> None:
    client = FakeClient([node("bbb222", "w1"), node("bbc333", "w2"), node("aaa111", "mgr", role="manager")])
    assert swarm_cluster.find_node(client, "w1").id == "bbb222"  # type: ignore[arg-type]
    assert swarm_cluster.find_node(client, "bbc").name == "w2"  # type: ignore[arg-type]
    with pytest.raises(PaasError, match="start of 2 node IDs"):
        swarm_cluster.find_node(client, "bb")  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="no node nope"):
        swarm_cluster.find_node(client, "nope")  # type: ignore[arg-type]
    for bad in ("$(id)", "a b", "../x/", "", "x" * 200):
        with pytest.raises(PaasError, match="not a node name"):
            swarm_cluster.find_node(client, bad)  # type: ignore[arg-type]


def test_the_manager_is_never_removed() -> None:
    me = swarm_cluster.list_nodes(FakeClient([node("aaa111", "mgr", role="manager")]))[0]  # type: ignore[arg-type]
    with pytest.raises(PaasError, match="cannot be removed"):
        swarm_cluster.remove(FakeClient(), me)  # type: ignore[arg-type]


def test_registry_certificates_chain_to_the_ca_and_follow_the_address(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    d = registry.ensure_certificates(settings, "172.17.0.1")
    proxy = d / "proxy"
    ca = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((proxy / "server.crt").read_bytes())
    manager = x509.load_pem_x509_certificate((d / "manager.cert").read_bytes())
    for cert in (server, manager):
        cert.verify_directly_issued_by(ca)
        assert cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("172.17.0.1")]
    for f in [*d.iterdir(), *proxy.iterdir()]:
        assert f.stat().st_mode & 0o077 == 0, f  # keys and certificates are root's only
    manager_before = (d / "manager.cert").read_bytes()
    registry.ensure_certificates(settings, "192.0.2.7")  # a new advertise address: a new server certificate
    server = x509.load_pem_x509_certificate((proxy / "server.crt").read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.7")]
    assert (d / "manager.cert").read_bytes() == manager_before
    assert isinstance(x509.load_pem_x509_certificate(manager_before).public_key(), ec.EllipticCurvePublicKey)


def test_registry_names(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, extra={"PAAS_REGISTRY_PORT": "5999"})
    assert registry.endpoint(settings, "172.17.0.1") == "172.17.0.1:5999"
    assert registry.endpoint(settings, "fd00::1") == "[fd00::1]:5999"
    assert registry.remote_ref("172.17.0.1:5999", "paas/app-x:b1") == "172.17.0.1:5999/paas/app-x:b1"


def test_swarm_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAAS_SWARM_ADVERTISE_ADDR", "192.0.2.10")
    monkeypatch.setenv("PAAS_REGISTRY_PORT", "5005")
    monkeypatch.setenv("PAAS_SWARM_APP_PORTS", "30000-30999")
    s = swarm_settings(Settings.from_env())
    assert (s.advertise_addr, s.registry_port, s.app_ports) == ("192.0.2.10", 5005, (30000, 30999))
    for name, bad in (
        ("PAAS_SWARM_ADVERTISE_ADDR", "host; rm -rf /"),
        ("PAAS_REGISTRY_PORT", "70000"),
        ("PAAS_SWARM_APP_PORTS", "40000-30000"),
        ("PAAS_SWARM_APP_PORTS", "a-b"),
    ):
        monkeypatch.setenv(name, bad)
        settings = Settings.from_env()  # the server starts: docker-local never reads them
        with pytest.raises(PaasError, match=f"^{name}"):  # what needs them says what is wrong
            swarm_settings(settings)
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("chain", "on"),
    [
        ("-N DOCKER\n-A DOCKER -i docker0 -j RETURN\n-A DOCKER -i br-1f5a -j RETURN\n", True),
        (
            "-N DOCKER\n-A DOCKER ! -i docker_gwbridge -p tcp -m tcp --dport 32768 -j DNAT"
            " --to-destination 172.18.0.3:5000\n",
            False,
        ),
        ("", False),  # no DOCKER chain: no bridge docker would skip
    ],
)
def test_userland_proxy_is_told_by_the_skip_dnat_rules(
    monkeypatch: pytest.MonkeyPatch, chain: str, on: bool
) -> None:
    done = subprocess.CompletedProcess([], 0, stdout=chain, stderr="")
    monkeypatch.setattr(swarm_cluster.subprocess, "run", lambda *a, **k: done)
    assert swarm_cluster.userland_proxy_on() is on


@pytest.mark.parametrize(
    ("proxy_on", "nnp", "missing"),
    [
        (False, True, []),
        (True, True, ['"userland-proxy": false']),
        (False, False, ['"no-new-privileges": true']),
        (True, False, ['"userland-proxy": false', '"no-new-privileges": true']),
    ],
)
def test_the_server_refuses_the_swarm_on_an_engine_without_the_nodes_settings(
    monkeypatch: pytest.MonkeyPatch, proxy_on: bool, nnp: bool, missing: list[str]
) -> None:
    monkeypatch.setattr(swarm_cluster, "userland_proxy_on", lambda: proxy_on)
    monkeypatch.setattr(swarm_cluster, "gives_no_new_privileges", lambda _client: nnp)
    if not missing:
        swarm_cluster.require_engine_settings(FakeClient())  # type: ignore[arg-type]
        return
    with pytest.raises(PaasError) as err:
        swarm_cluster.require_engine_settings(FakeClient())  # type: ignore[arg-type]
    assert all(m in str(err.value) for m in missing) and "/etc/docker/daemon.json" in str(err.value)
    assert "\n" not in str(err.value)  # one line


class ProbeClient:
    def __init__(self, out: bytes) -> None:
        self.containers = self
        self.out = out

    def run(self, image: str, command: list[str], **kwargs: object) -> bytes:
        assert kwargs["remove"] and kwargs["network_disabled"]  # a throwaway, offline
        return self.out


def test_no_new_privileges_is_read_off_a_throwaway_container() -> None:
    assert swarm_cluster.gives_no_new_privileges(ProbeClient(b"NoNewPrivs:\t1\n"))  # type: ignore[arg-type]
    assert not swarm_cluster.gives_no_new_privileges(ProbeClient(b"NoNewPrivs:\t0\n"))  # type: ignore[arg-type]


class FakeNetworks:
    def __init__(self, config: list[dict]) -> None:
        self.config = config

    def get(self, name: str) -> object:
        return type("Net", (), {"attrs": {"IPAM": {"Config": self.config}}})()


def test_the_default_advertise_address_is_docker0s_even_when_docker_shows_no_gateway() -> None:
    with_gateway = type(
        "C", (), {"networks": FakeNetworks([{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}])}
    )
    assert swarm_cluster.default_advertise_address(with_gateway()) == "172.18.0.1"  # type: ignore[arg-type]
    # a docker0 made before dockerd started: its subnet only, the bridge holds the first address
    subnet_only = type("C", (), {"networks": FakeNetworks([{"Subnet": "172.17.0.0/16"}])})
    assert swarm_cluster.default_advertise_address(subnet_only()) == "172.17.0.1"  # type: ignore[arg-type]
    with pytest.raises(PaasError, match="PAAS_SWARM_ADVERTISE_ADDR"):
        swarm_cluster.default_advertise_address(type("C", (), {"networks": FakeNetworks([])})())  # type: ignore[arg-type]


def test_the_pull_before_joining_gives_up_at_once_on_a_refused_certificate(tmp_path: Path) -> None:
    """Lines whose certificate was revoked (printed before a nodes:remove) say so instead of
    retrying for 15 minutes; a registry still waiting for the stack is retried."""
    fake = tmp_path / "docker"
    fake.write_text('#!/bin/sh\necho "<title>400 The SSL certificate error</title>"; exit 1\n')
    fake.chmod(0o755)
    line = swarm_cluster._pull_line("172.17.0.1:5001/paas/stack:x")
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=20, env=env)
    assert out.returncode == 1 and "refuses the certificate" in out.stderr, out
    fake.write_text("#!/bin/sh\nexit 0\n")
    assert subprocess.run(["sh", "-c", line], timeout=20, env=env).returncode == 0


def test_the_swarm_ports_answer_the_nodes_and_the_hosts_about_to_join_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = swarm_cluster.swarm_ports_rules({"10.0.0.7", "10.0.0.5"}, ("192.0.2.0/24", "fd00::/64"))
    assert rules == [
        ["-s", "10.0.0.5", "-j", "RETURN"],
        ["-s", "10.0.0.7", "-j", "RETURN"],
        ["-s", "192.0.2.0/24", "-j", "RETURN"],  # IPv4 only: the chain is iptables'
        ["-j", "DROP"],
    ]
    assert swarm_cluster.swarm_ports_rules(set(), ()) == [["-j", "DROP"]]  # no node yet: nobody
    jumps = [" ".join(j) for j in swarm_cluster.SWARM_JUMPS]
    assert jumps == [
        "INPUT ! -i lo -p tcp -m multiport --dports 2377,7946",
        "INPUT ! -i lo -p udp -m multiport --dports 7946,4789",
    ]
    monkeypatch.setenv("PAAS_SWARM_JOIN_ALLOW", "192.0.2.9, 198.51.100.0/24")
    assert swarm_settings(Settings.from_env()).join_allow == ("192.0.2.9/32", "198.51.100.0/24")
    monkeypatch.setenv("PAAS_SWARM_JOIN_ALLOW", "192.0.2.9; rm -rf /")
    with pytest.raises(PaasError, match="PAAS_SWARM_JOIN_ALLOW"):
        swarm_settings(Settings.from_env())


def test_a_pass_asks_the_node_list_only_and_docker_info_when_its_own_node_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each reconcile pass asks whether this engine manages a swarm and who the other nodes are.
    A manager: one `GET /nodes`, `docker info` (ten times dockerd's CPU with 200 containers)
    only to learn its own node, again when that node is gone. A lone engine: `docker info` only
    (GET /nodes would answer 503, which dockerd logs as an error on every pass)."""
    import docker

    monkeypatch.setattr(swarm_cluster, "_own_node", {})

    class Client(FakeClient):
        infos = 0
        lists = 0
        own = "aaa111"
        state = "active"

        def info(self) -> dict:
            Client.infos += 1
            return {"Swarm": {"LocalNodeState": self.state, "ControlAvailable": True, "NodeID": self.own}}

    client = Client([node("aaa111", "m", "manager", addr="10.0.0.1"), node("bbb222", "w", addr="10.0.0.2")])
    client.api.base_url = "http+docker://localhost"
    listed = client.api.nodes

    def counted() -> list[dict]:
        Client.lists += 1
        return listed()

    client.api.nodes = counted  # type: ignore[method-assign]
    assert swarm_cluster.other_nodes_if_manager(client) == {"10.0.0.2"}
    assert swarm_cluster.other_nodes_if_manager(client) == {"10.0.0.2"}
    assert (Client.infos, Client.lists) == (1, 2)  # docker info once, not once a pass
    client.api._nodes = [node("ccc333", "m", "manager", addr="10.0.0.1"), client.api._nodes[1]]
    client.own = "ccc333"  # the swarm was left and made again: a new ID for this engine
    assert swarm_cluster.other_nodes_if_manager(client) == {"10.0.0.2"}
    assert Client.infos == 2

    def not_a_manager() -> list[dict]:
        Client.lists += 1
        response = type("R", (), {"status_code": 503, "reason": "Service Unavailable"})()
        raise docker.errors.APIError("This node is not a swarm manager.", response=response)

    client.api.nodes = not_a_manager  # type: ignore[method-assign]
    client.state = "inactive"  # the swarm was left
    lists = Client.lists
    assert swarm_cluster.other_nodes_if_manager(client) is None
    assert swarm_cluster.other_nodes_if_manager(client) is None
    assert Client.lists == lists + 1  # once, to learn it; then a lone engine is asked docker info only
    assert Client.infos == 4

    def away() -> list[dict]:
        raise docker.errors.DockerException("connection refused")

    client.state, client.own = "active", "ccc333"
    client.api.nodes = counted  # type: ignore[method-assign]
    client.api._nodes = [node("ccc333", "m", "manager", addr="10.0.0.1")]
    assert swarm_cluster.other_nodes_if_manager(client) == set()  # a manager again, alone
    client.api.nodes = away  # type: ignore[method-assign]
    with pytest.raises(PaasError, match="cannot list the swarm's nodes"):
        swarm_cluster.other_nodes_if_manager(client)
