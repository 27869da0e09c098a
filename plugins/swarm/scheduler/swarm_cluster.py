"""The swarm itself: this host's dockerd as its manager, the nodes that joined it, and the shell
lines that make a new Debian host one of them.

Docker Swarm does the clustering; this module only asks it. The swarm is initialised the first
time it is needed (never left: the engine may be shared). The join lines work on any root shell
with docker.io running, systemd or not (they write files, talk to dockerd, and restart it once
when its settings change):

1. trust the PaaS's private registry: its CA and the client certificate made for this host
   (pull only; lines are printed for one host, by its name) under /etc/docker/certs.d/<addr:port>/
   (read by dockerd at every pull, no restart);
2. dockerd without its userland proxy and with no-new-privileges for every container (two keys
   of /etc/docker/daemon.json, restarting docker once when it still runs without them):
   docker-proxy answers containers of the host itself past iptables, and a swarm service cannot
   ask for no-new-privileges itself;
3. close the host's published app ports to everyone but the manager (a DOCKER-USER rule: the
   router on the manager is the only client they have);
4. `docker swarm join` (skipped when the host is already in a swarm, so the lines can be re-run).
"""

from __future__ import annotations

import base64
import fcntl
import ipaddress
import shlex
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import docker

from paas.buildpacks import stack
from paas.core.container import log_config
from paas.plugin_api import NotFound, PaasError, Settings, nft

from ..settings import swarm_settings
from . import registry_pki

SWARM_PORT = 2377
SWARM_TCP_PORTS = (SWARM_PORT, 7946)  # cluster management (managers only), gossip
SWARM_UDP_PORTS = (7946, 4789)  # gossip, overlay data (VXLAN)
# iptables' matches of those ports, one per protocol: every rule about them is built on these.
SWARM_PORT_MATCHES = tuple(
    ("-p", proto, "-m", "multiport", "--dports", ",".join(map(str, ports)))
    for proto, ports in (("tcp", SWARM_TCP_PORTS), ("udp", SWARM_UDP_PORTS))
)
# Overlay networks of the swarm get /24s from here, away from docker's bridges (172.17/16...)
# and the app networks' pool (PAAS_NETWORK_POOL, 10.199/16 by default).
SWARM_ADDRESS_POOL = "10.201.0.0/16"
NODE_REF_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True)
class NodeInfo:
    """One swarm node as `nodes:list` shows it."""

    id: str
    name: str
    address: str
    role: str  # manager, worker
    state: str  # ready, down, unknown, disconnected
    availability: str  # active, pause, drain
    tasks: int  # running tasks (processes) on it
    is_self: bool = False  # the engine this PaaS talks to


def default_advertise_address(client: docker.DockerClient) -> str:
    """docker0's address (the gateway of the default bridge): what containers on this host, and
    so the simulated nodes, reach the host by. Real multi-machine setups set
    PAAS_SWARM_ADVERTISE_ADDR to the host's LAN address instead."""
    try:
        config = client.networks.get("bridge").attrs["IPAM"]["Config"]
    except (docker.errors.DockerException, KeyError, TypeError):
        config = []
    for entry in config or []:
        gateway = (entry or {}).get("Gateway")
        if gateway and ipaddress.ip_address(gateway).version == 4:
            return gateway
    for entry in config or []:
        # A docker0 that existed before dockerd started is shown with its subnet only: the
        # gateway is then the bridge's own address, the subnet's first (docker's convention).
        subnet = (entry or {}).get("Subnet")
        try:
            network = ipaddress.ip_network(subnet or "", strict=False)
        except ValueError:
            continue
        if network.version == 4 and network.num_addresses > 2:
            return str(next(network.hosts()))
    raise PaasError("cannot find docker0's address: set PAAS_SWARM_ADVERTISE_ADDR to this host's address")


def advertise_address(settings: Settings, client: docker.DockerClient) -> str:
    """PAAS_SWARM_ADVERTISE_ADDR, else docker0's address: what the nodes reach this host by
    (the swarm's advertise address and the registry's)."""
    chosen = swarm_settings(settings).advertise_addr
    if chosen:
        return check_address(chosen)
    return default_advertise_address(client)


def check_address(address: str) -> str:
    """An IP address (it reaches shell lines and registry names): nothing else."""
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        raise PaasError(f"PAAS_SWARM_ADVERTISE_ADDR must be an IP address, got {address!r}") from None


def _local_state(client: docker.DockerClient) -> dict:
    try:
        return client.info().get("Swarm") or {}
    except docker.errors.DockerException as exc:
        raise PaasError(f"docker is not reachable: {exc}") from None


def swarm_active(client: docker.DockerClient, state: dict | None = None) -> bool:
    """Whether this engine is a swarm manager already (without initialising anything); `state`:
    its `docker info` Swarm part, when the caller has it (`docker info` is slow: 30-70 ms)."""
    state = _local_state(client) if state is None else state
    return state.get("LocalNodeState") == "active" and bool(state.get("ControlAvailable"))


def ensure_swarm(client: docker.DockerClient, advertise_addr: str) -> None:
    """Make this engine a swarm manager, once; later calls (and a swarm made by hand) are kept."""
    state = _local_state(client)
    if state.get("LocalNodeState") == "active":
        if not state.get("ControlAvailable"):
            raise PaasError("this docker engine is a swarm worker: run paas on a manager")
        return
    if state.get("LocalNodeState") not in (None, "inactive"):
        raise PaasError(f"this docker engine's swarm is {state.get('LocalNodeState')}: try again shortly")
    try:
        client.swarm.init(
            advertise_addr=advertise_addr,
            listen_addr=f"0.0.0.0:{SWARM_PORT}",
            default_addr_pool=[SWARM_ADDRESS_POOL],
            subnet_size=24,
        )
    except docker.errors.APIError as exc:
        if "already part of a swarm" in str(exc):  # a concurrent first ask won the race
            return
        raise PaasError(f"cannot initialise the swarm: {exc.explanation or exc}") from None


def worker_token(client: docker.DockerClient) -> str:
    try:
        client.swarm.reload()
        return client.swarm.attrs["JoinTokens"]["Worker"]
    except (docker.errors.DockerException, KeyError) as exc:
        raise PaasError(f"cannot read the swarm's join token: {exc}") from None


PULL_TRIES = 180  # x 5 s: the manager's first push of the stack, then the pull itself


def rotate_worker_token(client: docker.DockerClient) -> None:
    """A new worker join token: lines printed before stop working (a removed host that kept them
    cannot join again and be handed every task's spec, config vars included). The swarm's spec is
    sent back as it is: only the token changes."""
    try:
        current = client.api.inspect_swarm()
        client.api.update_swarm(
            version=current["Version"]["Index"], swarm_spec=current["Spec"], rotate_worker_token=True
        )
    except (docker.errors.DockerException, KeyError) as exc:
        raise PaasError(f"cannot rotate the swarm's join token: {exc}") from None


def _write_file_line(path: str, content: bytes) -> str:
    """A shell line writing `content` to `path` (base64: one quoted word, any bytes)."""
    return f"echo {base64.b64encode(content).decode()} | base64 -d > {shlex.quote(path)}"


DAEMON_JSON = "/etc/docker/daemon.json"
DOCKER_CONFIG_SCRIPT = "/usr/local/sbin/paas-node-docker-config"

# Two engine-wide settings every host of the swarm needs ("daemon.json" keys):
#
# - "userland-proxy": false. A container asking its bridge's gateway (this host) for a published
#   port is answered by docker-proxy, a process: the connection never crosses FORWARD, so no
#   DOCKER-USER rule sees it, and any app's code on the host would reach every task's port. With
#   the proxy off docker NATs those connections like any other machine's ("hairpin"), and the
#   firewall rule applies. docker adds `-i <bridge> -j RETURN` (no DNAT from its bridges) to
#   nat's DOCKER chain only while its proxy is on: that is how the lines and the server tell.
# - "no-new-privileges": true. A swarm service cannot ask for it (Engine 20.10's API has no such
#   field), so the engine gives it to every container. Without it a task's setuid binaries could
#   make it root inside (no capabilities, as they are all dropped, but root's files). `docker
#   info` does not show it: the lines restart docker when the file is newer than the running
#   dockerd, and the server asks a throwaway container.
DAEMON_SETTINGS = '{"userland-proxy": false, "no-new-privileges": true}'
DOCKER_CONFIG_SCRIPT_TEXT = f"""#!/bin/sh
# written by paas nodes:join-command: dockerd without its userland proxy (so that containers on
# this host meet the app port firewall like any other machine; docker-proxy answers them past
# it) and with no-new-privileges for every container (swarm tasks cannot ask for it themselves)
set -e
conf={DAEMON_JSON}
proxy_on() {{ iptables -t nat -S DOCKER 2>/dev/null | grep -q -- ' -j RETURN$'; }}
# docker info does not show no-new-privileges: a file newer than the running dockerd is not read
pid() {{ cat /var/run/docker.pid; }}
stale() {{ [ "$(stat -c %Y "$conf")" -gt "$(date -d "$(ps -o lstart= -p "$(pid)")" +%s)" ]; }}
if ! grep -qs '"userland-proxy": *false' "$conf" || ! grep -qs '"no-new-privileges": *true' "$conf"; then
  if [ -s "$conf" ] && [ "$(cat "$conf")" != '{{"userland-proxy": false}}' ]; then  # not ours
    echo 'paas: add {DAEMON_SETTINGS} to {DAEMON_JSON}, then run these lines again' >&2
    exit 1
  fi
  mkdir -p /etc/docker
  echo '{DAEMON_SETTINGS}' > "$conf"
fi
proxy_on || stale || exit 0
echo 'paas: restarting docker with {DAEMON_JSON}' >&2
old=$(pid)
if [ -d /run/systemd/system ]; then
  systemctl restart docker
else
  kill "$old"  # this host's own supervisor starts it again
fi
tries=0
until [ "$(pid 2>/dev/null)" != "$old" ] && docker info >/dev/null 2>&1 && ! proxy_on; do
  tries=$((tries + 1))
  if [ "$tries" -gt 240 ]; then
    echo 'paas: docker did not come back with {DAEMON_JSON}: start it, then run these lines again' >&2
    exit 1
  fi
  sleep 0.5
done
"""


def userland_proxy_on() -> bool:
    """Whether this host's dockerd answers its bridges' containers with docker-proxy (see
    DAEMON_SETTINGS). No iptables, or no DOCKER chain: no docker bridge to skip."""
    try:
        out = subprocess.run(["iptables", "-t", "nat", "-S", "DOCKER"], capture_output=True, text=True)
    except OSError:
        return False
    return any(
        line.startswith("-A DOCKER -i ") and line.endswith(" -j RETURN") for line in out.stdout.splitlines()
    )


def gives_no_new_privileges(client: docker.DockerClient) -> bool:
    """Whether the engine gives a container that asked for nothing no-new-privileges: a
    throwaway container of the stack image (always here) reads its own flag."""
    try:
        out = client.containers.run(
            stack.LATEST_ALIAS,
            ["grep", "^NoNewPrivs:", "/proc/self/status"],
            remove=True,
            network_disabled=True,
            log_config=log_config(),
        )
    except docker.errors.DockerException as exc:
        raise PaasError(f"cannot ask dockerd whether it gives no-new-privileges: {exc}") from None
    return out.split()[-1:] == [b"1"]


def require_engine_settings(client: docker.DockerClient) -> None:
    """The server's own engine runs swarm tasks too: it needs what the join lines set on a node."""
    missing = []
    if userland_proxy_on():
        missing.append(
            '"userland-proxy": false (else any container here reaches swarm tasks past the router)'
        )
    if not gives_no_new_privileges(client):
        missing.append('"no-new-privileges": true (swarm tasks cannot ask for it themselves)')
    if missing:
        raise PaasError(
            f"this host's dockerd needs {' and '.join(missing)} in {DAEMON_JSON}, then a restart of"
            " docker (scripts/bootstrap.sh does both)"
        )


FIREWALL_SCRIPT = "/usr/local/sbin/paas-node-firewall"
FIREWALL_UNIT = "/etc/systemd/system/paas-node-firewall.service"

# iptables rules are gone after a reboot: on a systemd host this unit puts the rule back once
# docker has started (dockerd keeps DOCKER-USER's rules when it restarts; it never flushes them).
FIREWALL_UNIT_TEXT = f"""[Unit]
Description=paas: published app ports answer the swarm manager only
After=docker.service
Wants=docker.service

[Service]
Type=oneshot
ExecStart={FIREWALL_SCRIPT}
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
"""


def firewall_script(manager_addr: str, ports: tuple[int, int], nodes: set[str] = frozenset()) -> str:
    """Published ports in `ports` answer the manager only. Docker DNATs a published port before
    the packet reaches DOCKER-USER, so the rule matches the port the client asked for
    (conntrack's original destination), and only connections docker itself translated, in the
    client's direction (the replies come from the container's own address). This host's swarm
    ports answer the manager and `nodes` only (the nodes when the lines were printed), unless
    the chain is there already (the node guard's task keeps it to the nodes of now). Idempotent."""
    tables = "ip6tables" if ipaddress.ip_address(manager_addr).version == 6 else "iptables"
    rule = (
        "DOCKER-USER -p tcp -m conntrack --ctstate DNAT --ctdir ORIGINAL"
        f" --ctorigdstport {ports[0]}:{ports[1]} ! -s {manager_addr} -j DROP"
    )

    def insert(r: str) -> str:  # a rule added unless it is there
        return f"{tables} -C {r} 2>/dev/null || {tables} -I {r}\n"

    lines = [insert(r) for r in (rule, *TASKS_OFF_SWARM_PORTS)]
    if tables == "iptables":  # the swarm's ports, as the manager guards its own (IPv4)
        restore = swarm_ports_restore({manager_addr, *nodes})
        # Only where there is none: at a boot the node guard's task may have written the nodes of
        # now already, and lines pasted again must not put back an older list.
        lines.append(
            f"iptables -S {SWARM_CHAIN} >/dev/null 2>&1"
            f" || iptables-restore -w --noflush <<'EOF'\n{restore}EOF\n"
        )
        lines += [insert(r) for r in swarm_ports_jumps()]
    return (
        "#!/bin/sh\n"
        "# written by paas nodes:join-command: published app ports answer the swarm manager only;\n"
        "# this host's tasks reach no host's swarm ports, and its own answer the swarm's nodes only\n"
        "set -e\n"
        f"{tables} -N DOCKER-USER 2>/dev/null || true\n" + "".join(lines)
    )


# A node's tasks leave their overlays through docker_gwbridge, masqueraded as the node: to every
# other node they would be a node (gossip on 7946, VXLAN frames into any overlay on 4789/udp).
# The swarm's own traffic leaves from the host itself (OUTPUT), never through FORWARD.
TASKS_OFF_SWARM_PORTS = tuple(
    " ".join(
        ["DOCKER-USER", "-i", "docker_gwbridge", *match, "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"]
    )
    for match in SWARM_PORT_MATCHES
)


# Swarm tasks on the manager publish their host-mode ports on every address too, and their
# traffic leaves through docker_gwbridge (the bridge of tasks on an overlay). The router reaches
# them from this host itself, which never passes FORWARD; anyone else is dropped (a rule of
# NODES_TABLE; an iptables rule off DOCKER-USER before, which docker's own ACCEPT of a network
# can sit above).
def close_manager_ports(ports: tuple[int, int], locks: Path = Settings.engine_locks_dir) -> None:
    """Close the manager's swarm task ports (`ports`) to every other host. Idempotent; the table
    goes with a reboot, so the server writes it again whenever it starts using the swarm."""
    guard_node_ports(set(), ports, None, locks=locks)


# On the manager, an nftables table of its own keeps this host's containers off the other nodes'
# task ports and swarm ports. A container on the manager reaching another node leaves
# masqueraded as the manager's address: the one address the nodes' firewall lets open task ports
# (for the router), and a node to the others (gossip on 7946; VXLAN frames on 4789/udp into any
# overlay, which names its network by number and checks nothing else). The router and the
# swarm's own traffic leave from this host itself (OUTPUT); a container's connection crosses
# FORWARD, un-DNATed. Only new connections: the task ports are in the ephemeral range, so the
# replies of any connection a node's address opened (or a container that now has that address)
# carry such a port too. The swarm ports only for our containers (the app networks' pools, and
# swarm tasks here, on docker_gwbridge): a host routed through this one (the suite's simulated
# nodes on docker0) talks to the others as nodes do. A UDP flow is NEW until something answers.
#
# Not iptables chains off DOCKER-USER, as before: docker's own ACCEPT of a network made beside
# another can sit above FORWARD's jump to DOCKER-USER (see paas/scheduler/egress.py). A base
# chain of our own sees every packet whatever docker's rules accept, and its drop is final.
# The table is the host's, shared by the servers on it: each adds its pool, its task ports and
# the nodes it knows; a node that left is taken out by the server that saw it go.
NODES_TABLE = "paas_nodes"
_TCP, _UDP = (", ".join(map(str, ports)) for ports in (SWARM_TCP_PORTS, SWARM_UDP_PORTS))
_NODES_RULES = (
    # the manager's own task ports, to everyone but this host (the router)
    'oifname "docker_gwbridge" meta l4proto tcp ct status dnat ct direction original'
    " ct original proto-dst @task_ports drop",
    # the other nodes' task ports and swarm ports, to this host's containers
    "ct state new ct status & dnat == 0 tcp dport @task_ports ip daddr @nodes drop",
    *(
        f"ct state new {source} {proto} dport {{ {ports} }} ip daddr @nodes drop"
        for source in ("ip saddr @pools", 'iifname "docker_gwbridge"')
        for proto, ports in (("tcp", _TCP), ("udp", _UDP))
    ),
)
_NODES_TABLE_BODY = (
    "\tset nodes { type ipv4_addr; }\n"
    "\tset pools { type ipv4_addr; flags interval; auto-merge; }\n"
    "\tset task_ports { type inet_service; flags interval; auto-merge; }\n"
    "\tchain forward {\n\t\ttype filter hook forward priority -1; policy accept;\n"
    + "".join(f"\t\t{rule}\n" for rule in _NODES_RULES)
    + "\t}\n"
)
# Where the guard lived before (iptables): removed when a server next writes the table.
OLD_NODES_CHAIN = "PAAS-NODES"


NODES_WHAT = "the guard of the swarm's task ports"
_nodes_chains: dict[str, str] = {}  # the table's rules, as nft listed them after this process wrote it


def nodes_guard_script(
    addresses: set[str], ports: tuple[int, int], pool: str | None, gone: set[str], create: bool
) -> str:
    """One `nft -f` transaction: the table written anew when `create`, this server's pool and
    task ports, the nodes at `addresses` in, those in `gone` out (added first, so the delete
    never fails)."""
    lines = [nft.rewrite(NODES_TABLE, _NODES_TABLE_BODY)] if create else []
    if pool:
        lines.append(f"add element ip {NODES_TABLE} pools {{ {pool} }}")
    lines.append(f"add element ip {NODES_TABLE} task_ports {{ {ports[0]}-{ports[1]} }}")
    if addresses:
        lines.append(f"add element ip {NODES_TABLE} nodes {{ {', '.join(sorted(addresses))} }}")
    out = sorted(set(gone) - set(addresses))
    if out:
        lines.append(f"add element ip {NODES_TABLE} nodes {{ {', '.join(out)} }}")
        lines.append(f"delete element ip {NODES_TABLE} nodes {{ {', '.join(out)} }}")
    return "\n".join(lines) + "\n"


def other_node_addresses(client: docker.DockerClient) -> set[str]:
    """The addresses of every node but this one (IPv4: the manager's address family here)."""
    try:
        self_id = _local_state(client).get("NodeID")
    except docker.errors.DockerException as exc:
        raise PaasError(f"cannot list the swarm's nodes: {exc}") from None
    return addresses_of_nodes(client, but=self_id)


def addresses_of_nodes(client: docker.DockerClient, but: str | None = None) -> set[str]:
    """The addresses of every node (but the one of ID `but`), IPv4."""
    try:
        listed = client.api.nodes()
    except docker.errors.DockerException as exc:
        raise PaasError(f"cannot list the swarm's nodes: {exc}") from None
    return _ipv4_addresses(listed, but)


def _ipv4_addresses(listed: list[dict], but: str | None) -> set[str]:
    found = {_address(n) for n in listed if n["ID"] != but}
    return {a for a in found if a and a != "0.0.0.0" and ipaddress.ip_address(a).version == 4}


_own_node: dict[str, str] = {}  # engine API address -> this engine's swarm node ID
_own_node_lock = threading.Lock()


def other_nodes_if_manager(client: docker.DockerClient) -> set[str] | None:
    """The other nodes' addresses (as other_node_addresses) when this engine is a swarm manager,
    None when it is not: for a check every reconcile pass. On an engine known to be a manager,
    one `GET /nodes` (with 200 containers `docker info` cost dockerd 11 ms of CPU and this
    server 2 ms; the node list 1 and 1.5); `docker info` where it is not known to be one (a lone
    engine answers GET /nodes with a 503, which dockerd logs as an error: not every pass), and
    again when this engine's own node is no longer listed (a swarm left and made again)."""
    key = client.api.base_url
    with _own_node_lock:
        own = _own_node.get(key)
    if own is not None:
        try:
            listed: list[dict] | None = client.api.nodes()
        except docker.errors.APIError as exc:
            if exc.status_code != 503:  # 503: "This node is not a swarm manager" (any more)
                raise PaasError(f"cannot list the swarm's nodes: {exc}") from None
            listed = None
        except docker.errors.DockerException as exc:
            raise PaasError(f"cannot list the swarm's nodes: {exc}") from None
        if listed is not None and any(n["ID"] == own for n in listed):
            return _ipv4_addresses(listed, own)
        with _own_node_lock:
            _own_node.pop(key, None)
    state = _local_state(client)
    if not swarm_active(client, state):
        return None
    own = str(state.get("NodeID") or "")
    addresses = addresses_of_nodes(client, but=own)
    with _own_node_lock:
        _own_node[key] = own
    return addresses


def guard_node_ports(
    addresses: set[str],
    ports: tuple[int, int],
    pool: str | None,
    gone: frozenset[str] | set[str] = frozenset(),
    locks: Path = Settings.engine_locks_dir,
) -> None:
    """Containers on this host cannot open the task ports (`ports`) nor the swarm ports of the
    nodes at `addresses` (`pool`: the app networks'), nor anyone but this host this manager's own
    task ports; the addresses in `gone` (nodes that left) are let through again. Idempotent; one
    transaction, under the engine's lock (two servers never make the table at once). A table
    whose rules are not those this process wrote (a hand edit, a flushed chain) is written anew."""
    for addr in (*addresses, *gone):
        if ipaddress.ip_address(addr).version != 4:
            raise PaasError(f"not an IPv4 node address: {addr!r}")
    if pool:
        ipaddress.ip_network(pool)
    lock = locks / "nodes-guard.lock"
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            text = nft.listing(NODES_TABLE, NODES_WHAT)
            known = _nodes_chains.get(NODES_TABLE)
            create = text is None or (known is not None and nft.chains(text) != known)
            nft.run(nodes_guard_script(set(addresses), ports, pool, set(gone), create), NODES_WHAT)
            _nodes_chains[NODES_TABLE] = nft.chains(nft.listing(NODES_TABLE, NODES_WHAT) or "")
    except OSError as exc:
        raise PaasError(f"cannot write {NODES_WHAT}: {exc}") from None
    _drop_old_nodes_rules()


def nodes_guard_holds(addresses: set[str] | frozenset[str], ports: tuple[int, int], pool: str) -> bool:
    """Whether the table is there with the rules this process wrote, the nodes at `addresses`,
    `pool` and `ports` (a reboot or a flushed ruleset loses it): one listing, for a check."""
    text = nft.listing(NODES_TABLE, NODES_WHAT)
    if text is None or nft.chains(text) != _nodes_chains.get(NODES_TABLE, nft.chains(text)):
        return False
    listed = nft.members(text)
    return (
        all(nft.covered(a, listed.get("nodes", [])) for a in addresses)
        and nft.covered(pool, listed.get("pools", []))
        and nft.covered(f"{ports[0]}-{ports[1]}", listed.get("task_ports", []), port=True)
    )


def guarded_nodes() -> set[str]:
    """The node addresses the table holds (empty without the table)."""
    text = nft.listing(NODES_TABLE, NODES_WHAT)
    return set(nft.members(text).get("nodes", [])) if text else set()


def _drop_old_nodes_rules() -> None:
    """What an older version kept in iptables: the chain, DOCKER-USER's jumps to it and the
    manager's own task-port rule."""

    def manager_rule(rule: str) -> bool:
        return "-o docker_gwbridge" in rule and "--ctorigdstport" in rule and rule.endswith("-j DROP")

    nft.drop_old_iptables("DOCKER-USER", (OLD_NODES_CHAIN,), also=manager_rule)


SWARM_CHAIN = "PAAS-SWARM"  # on the manager: who may reach the swarm's own ports
# A host that reaches 2377 with a join token becomes a node; one that reaches 7946 or 4789 can
# speak gossip or inject frames into an overlay (a VXLAN packet names its network by number).
# Only the swarm's nodes and the hosts an operator lists as about to join (PAAS_SWARM_JOIN_ALLOW)
# get through; the loopback (this host's own swarm traffic) is not filtered.
SWARM_JUMPS = tuple(("INPUT", "!", "-i", "lo", *match) for match in SWARM_PORT_MATCHES)


def _iptables(*args: str, check: bool = True) -> int:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=check).returncode


def swarm_ports_rules(nodes: set[str], allow: tuple[str, ...]) -> list[list[str]]:
    """SWARM_CHAIN's rules, in order: the nodes and the allowed hosts return, the rest is dropped."""
    sources = sorted(nodes) + [a for a in allow if ipaddress.ip_network(a, strict=False).version == 4]
    return [*(["-s", src, "-j", "RETURN"] for src in sources), ["-j", "DROP"]]


def swarm_ports_restore(nodes: set[str], allow: tuple[str, ...] = ()) -> str:
    """SWARM_CHAIN written whole, as `iptables-restore --noflush` input: the manager's, and each
    worker's (its join lines, then its node guard task, node_guard.py)."""
    lines = ["*filter", f":{SWARM_CHAIN} - [0:0]"]  # declared: created, or emptied, in the commit
    lines += [" ".join(["-A", SWARM_CHAIN, *rule]) for rule in swarm_ports_rules(nodes, allow)]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def swarm_ports_jumps() -> list[str]:
    """The INPUT rules that send the swarm ports to SWARM_CHAIN, one `iptables` argument line each."""
    return [" ".join([*jump, "-j", SWARM_CHAIN]) for jump in SWARM_JUMPS]


def swarm_ports_guarded() -> bool:
    """Whether the jumps to SWARM_CHAIN are in INPUT (a reboot or a flush loses them)."""
    try:
        return all(_iptables("-C", *jump, "-j", SWARM_CHAIN, check=False) == 0 for jump in SWARM_JUMPS)
    except OSError:
        return False


def guard_swarm_ports(nodes: set[str], allow: tuple[str, ...]) -> None:
    """The manager's swarm ports answer `nodes` (the other nodes' addresses) and `allow` only:
    the chain is written whole in one `iptables-restore` transaction, then jumped to from INPUT.
    Idempotent. (Flushed and refilled rule by rule, two servers writing it at once interleaved
    their rules into a DROP ahead of the RETURNs, and every node's heartbeat was dropped.)"""
    try:
        done = subprocess.run(
            ["iptables-restore", "-w", "--noflush"],
            input=swarm_ports_restore(nodes, allow),
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise PaasError(
                f"cannot close the swarm's ports to hosts that are not nodes: {done.stderr.strip()}"
            )
        for jump in SWARM_JUMPS:
            if _iptables("-C", *jump, "-j", SWARM_CHAIN, check=False):
                _iptables("-I", *jump, "-j", SWARM_CHAIN)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        raise PaasError(f"cannot close the swarm's ports to hosts that are not nodes: {detail}") from None


def unguard_swarm_ports() -> None:
    """Remove the jumps and the chain (tests, uninstall)."""
    for jump in SWARM_JUMPS:
        while _iptables("-D", *jump, "-j", SWARM_CHAIN, check=False) == 0:
            pass
    _iptables("-F", SWARM_CHAIN, check=False)
    _iptables("-X", SWARM_CHAIN, check=False)


def firewall_lines(manager_addr: str, ports: tuple[int, int], nodes: set[str] = frozenset()) -> list[str]:
    """Install the firewall script, run it, and on a systemd host run it at every boot (a host
    without systemd runs FIREWALL_SCRIPT from its own boot scripts)."""
    return [
        f"{_write_file_line(FIREWALL_SCRIPT, firewall_script(manager_addr, ports, nodes).encode())}"
        f" && chmod 755 {FIREWALL_SCRIPT}",
        FIREWALL_SCRIPT,
        f"if [ -d /run/systemd/system ]; then {_write_file_line(FIREWALL_UNIT, FIREWALL_UNIT_TEXT.encode())}"
        " && systemctl daemon-reload && systemctl enable --quiet paas-node-firewall.service; fi",
    ]


def join_lines(
    client: docker.DockerClient,
    advertise_addr: str,
    registry: str,
    ca_pem: bytes,
    client_cert_pem: bytes,
    client_key_pem: bytes,
    ports: tuple[int, int],
    prefetch: tuple[str, ...] = (),
    *,
    node: str,
    nodes: set[str] = frozenset(),
) -> list[str]:
    """The shell lines that make the Debian host `node` (its hostname, which Swarm names it by)
    with docker.io a worker of this swarm: trust the private registry (`registry` is `addr:port`)
    with the certificate made for that host, set the engine's two settings, close the app ports
    to strangers and the swarm's ports to all but the manager and `nodes` (now and after a
    reboot), pull `prefetch` (the stack: the big layer of every app image, so a new node's first
    task does not wait for 768 MB; the node guard's image), join. The certificate and the
    join only happen on a host of that name: `nodes:remove <node>` revokes the certificates made
    for that name, so another host must not carry them."""
    registry_pki.node_name(node)  # it reaches the lines: a hostname, nothing else
    certs = f"/etc/docker/certs.d/{registry}"
    token = worker_token(client)
    here = f'[ "$(uname -n)" = {shlex.quote(node)} ]'
    join = (
        "docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active"
        f" || docker swarm join --token {shlex.quote(token)} {advertise_addr}:{SWARM_PORT}"
    )
    wrong_host = (
        f"these lines are for the host {node}, this is $(uname -n):"
        " print its own with nodes:join-command $(uname -n)"
    )
    return [
        f'{here} || {{ echo "paas: {wrong_host}" >&2; false; }}',
        f"{here} && mkdir -p {shlex.quote(certs)}"
        f" && {_write_file_line(f'{certs}/ca.crt', ca_pem)}"
        f" && {_write_file_line(f'{certs}/client.cert', client_cert_pem)}"
        f" && (umask 077 && {_write_file_line(f'{certs}/client.key', client_key_pem)})",
        f"{_write_file_line(DOCKER_CONFIG_SCRIPT, DOCKER_CONFIG_SCRIPT_TEXT.encode())}"
        f" && chmod 755 {DOCKER_CONFIG_SCRIPT}",
        DOCKER_CONFIG_SCRIPT,
        *firewall_lines(advertise_addr, ports, nodes),
        " && ".join([here, *(_pull_line(ref) for ref in prefetch), f"{{ {join}; }}"]),
    ]


def _pull_line(ref: str) -> str:
    """Pull `ref`, waiting for the manager to finish pushing it (it starts when the lines are
    printed), but not for a registry that refuses this host's certificate (revoked: waiting would
    not help); one subshell, so a failure ends the line and not the operator's shell."""
    q = shlex.quote(ref)
    return (
        f"(echo 'paas: pulling {ref} before joining' >&2; n=0;"
        f' until out=$(docker pull -q {q} 2>&1); do n=$((n + 1)); case "$out" in *"certificate error"*)'
        " echo 'paas: the registry refuses the certificate in these lines (revoked?):"
        " print new ones with nodes:join-command' >&2; exit 1;; esac;"
        f" if [ $n -ge {PULL_TRIES} ]; then echo 'paas: cannot pull {ref}: run these lines again' >&2;"
        " exit 1; fi; sleep 5; done)"
    )


def _address(node: dict) -> str:
    addr = (node.get("Status") or {}).get("Addr") or ""
    manager = (node.get("ManagerStatus") or {}).get("Addr") or ""
    if (not addr or addr == "0.0.0.0") and manager:
        addr = manager.rsplit(":", 1)[0]
    return addr


def list_nodes(client: docker.DockerClient) -> list[NodeInfo]:
    """Every node of the swarm, managers first, then by name."""
    try:
        nodes = client.api.nodes()
        tasks = client.api.tasks(filters={"desired-state": "running"})
        self_id = _local_state(client).get("NodeID")
    except docker.errors.DockerException as exc:
        raise PaasError(f"cannot list the swarm's nodes: {exc}") from None
    running: dict[str, int] = {}
    for t in tasks:
        if (t.get("Status") or {}).get("State") == "running" and t.get("NodeID"):
            running[t["NodeID"]] = running.get(t["NodeID"], 0) + 1
    out = [
        NodeInfo(
            id=n["ID"],
            name=(n.get("Description") or {}).get("Hostname") or n["ID"][:12],
            address=_address(n),
            role=(n.get("Spec") or {}).get("Role", "worker"),
            state=(n.get("Status") or {}).get("State", "unknown"),
            availability=(n.get("Spec") or {}).get("Availability", "active"),
            tasks=running.get(n["ID"], 0),
            is_self=n["ID"] == self_id,
        )
        for n in nodes
    ]
    return sorted(out, key=lambda n: (n.role != "manager", n.name, n.id))


def find_node(client: docker.DockerClient, ref: str) -> NodeInfo:
    """A node by its name, its ID or a unique ID prefix."""
    if not ref or len(ref) > 128 or not set(ref) <= NODE_REF_CHARS:
        raise PaasError(f"not a node name or ID: {ref!r}")
    nodes = list_nodes(client)
    by_name = [n for n in nodes if n.name == ref]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        raise PaasError(
            f"{len(by_name)} nodes are named {ref}: use its ID ({', '.join(n.id[:12] for n in by_name)})"
        )
    by_id = [n for n in nodes if n.id.startswith(ref)]
    if len(by_id) == 1:
        return by_id[0]
    if len(by_id) > 1:
        raise PaasError(f"{ref} is the start of {len(by_id)} node IDs: give more of it")
    raise NotFound(f"no node {ref}: see nodes:list")


def set_availability(client: docker.DockerClient, node: NodeInfo, availability: str) -> None:
    """drain (its tasks move to other nodes), active, or pause."""
    try:
        raw = client.nodes.get(node.id)
        spec = dict(raw.attrs["Spec"])
        spec["Availability"] = availability
        raw.update(spec)
    except docker.errors.DockerException as exc:
        raise PaasError(f"cannot set {node.name} to {availability}: {_explain(exc)}") from None


def drain(client: docker.DockerClient, node: NodeInfo) -> None:
    set_availability(client, node, "drain")


def activate(client: docker.DockerClient, node: NodeInfo) -> None:
    set_availability(client, node, "active")


def remove(client: docker.DockerClient, node: NodeInfo, force: bool = False) -> None:
    """Forget a node. Docker refuses one still up (unless forced): its engine would keep
    running tasks nobody watches."""
    if node.is_self:
        raise PaasError(f"{node.name} is this server's own engine (the manager): it cannot be removed")
    if node.role == "manager":
        raise PaasError(f"{node.name} is a manager: demote it first (docker node demote)")
    try:
        client.api.remove_node(node.id, force=force)
    except docker.errors.DockerException as exc:
        text = _explain(exc)
        if "is not down" in text:
            raise PaasError(
                f"{node.name} is still up: run `docker swarm leave` on it (or nodes:remove --force)"
            ) from None
        raise PaasError(f"cannot remove {node.name}: {text}") from None


def _explain(exc: docker.errors.DockerException) -> str:
    return str(getattr(exc, "explanation", None) or exc).strip().splitlines()[0]
