"""Where builds and app containers may connect: the internet (package mirrors, APIs), not this
host's own services, not link-local addresses (a cloud server's metadata service at
169.254.169.254 hands out its IAM credentials), not the private ranges an operator lists.

Every container we run (app processes, one-offs, backing services, buildpack and Dockerfile
builds) sits on a network from PAAS_NETWORK_POOL, so the policy is keyed on that source range:

- leaving for another machine (FORWARD): an nftables table of our own per pool (`table_name`),
  whose base chain on the forward hook lets our own networks and replies pass and refuses
  link-local and PAAS_EGRESS_DENY;
- to this host's own addresses (INPUT, which forwarded traffic never crosses): HOST_CHAIN,
  jumped to from INPUT: replies pass, and the router's ports (an app may call another app by its
  public URL); everything else (SSH, the dashboard, the registry, a database on the host) is
  refused.

Why not an iptables chain off DOCKER-USER for the first, as before: docker moves the jump to
DOCKER-USER back on top of FORWARD when it makes a network, but networks made side by side can
leave one network's own `-i br-… ! -o br-… -j ACCEPT` above that jump until the next network is
made, and every container on it skipped the policy (seen in a 200-app bench, and in the suite,
where a `run` one-off reached the metadata service). A table of our own has a base chain of its
own on the forward hook: whatever docker's rules accept, it still sees every packet, and its
reject is final. Docker never touches it, nor INPUT.

Both are written when the server starts and checked on reconcile passes (a reboot loses them).
Servers sharing a host and a pool (as the tests run them) share the table and the chain: a
server that starts writes its own settings, and the others put theirs back at their next check
(`ensure` only adds).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess

from paas.errors import PaasError
from paas.settings import Settings

OLD_CHAIN = "PAAS-EGRESS"  # where the forward policy lived before (removed when the server starts)
HOST_CHAIN = "PAAS-EGRESS-HOST"
LINK_LOCAL = "169.254.0.0/16"
REJECT = ["-j", "REJECT"]  # refused at once (port unreachable), not left to time out


def _host_rules(settings: Settings) -> list[list[str]]:
    replies = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"]
    host = [replies, ["-d", LINK_LOCAL, *REJECT]]
    router = sorted({p for p in (settings.http_port, settings.https_port) if p})
    if router:
        host.append(["-p", "tcp", "-m", "multiport", "--dports", ",".join(map(str, router)), "-j", "RETURN"])
    host.append(REJECT)
    return host


def _host_jump(settings: Settings) -> list[str]:
    return ["INPUT", "-s", settings.network_pool, "-j", HOST_CHAIN]


def table_name(settings: Settings) -> str:
    """`paas_egress_10_199_0_0_16`: servers with pools of their own on one host keep their own
    policies; servers sharing a pool share it."""
    pool = ipaddress.ip_network(settings.network_pool, strict=False)
    return "paas_egress_" + str(pool).replace(".", "_").replace("/", "_")


def _refused(settings: Settings) -> str:
    return ", ".join([LINK_LOCAL, *(c for c in settings.egress_deny if _v4(c))])


def ruleset(settings: Settings) -> str:
    """The forward table, as `nft -f` reads it: declared, deleted and written again in one
    transaction (the empty declaration first, so the delete never fails on a new machine)."""
    pool, table = settings.network_pool, table_name(settings)
    return (
        f"table ip {table}\n"
        f"delete table ip {table}\n"
        f"table ip {table} {{\n"
        "\tset refused {\n\t\ttype ipv4_addr; flags interval; auto-merge;\n"
        f"\t\telements = {{ {_refused(settings)} }}\n\t}}\n"
        "\tchain forward {\n\t\ttype filter hook forward priority -1; policy accept;\n"
        f"\t\tip saddr {pool} jump containers\n\t}}\n"
        f"\tchain containers {{\n\t\tip daddr {pool} return\n"
        "\t\tct state established,related return\n\t\tip daddr @refused reject\n\t}\n"
        "}\n"
    )


def _v4(cidr: str) -> bool:
    return ipaddress.ip_network(cidr, strict=False).version == 4


def _iptables(*args: str, check: bool = True) -> int:
    try:
        done = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)
    except OSError as exc:
        raise PaasError(f"cannot run iptables for the egress policy: {exc}") from None
    if check and done.returncode:
        raise PaasError(f"iptables {' '.join(args)}: {done.stderr.strip()}")
    return done.returncode


def _nft(script: str) -> None:
    try:
        done = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    except OSError as exc:
        raise PaasError(f"cannot run nft for the egress policy: {exc}") from None
    if done.returncode:
        raise PaasError(f"nft (the egress policy): {done.stderr.strip()}")


def _listing(table: str) -> str | None:
    done = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def _shape(listing: str) -> str:
    """A table's listing without its set's elements: what `ensure` compares with what it wrote
    (the elements are compared by adding them, as other servers on the pool add theirs)."""
    return re.sub(r"elements = \{[^}]*\}", "", listing)


_written: dict[str, str] = {}  # each table's shape, as this process last wrote it


def apply(settings: Settings) -> None:
    """Write the forward table whole from the settings and rebuild the host chain (each in one
    transaction: there is never a moment without a rule), make sure INPUT jumps to the chain,
    and drop the chain an older version kept the forward policy in."""
    table = table_name(settings)
    _nft(ruleset(settings))
    _written[table] = _shape(_listing(table) or "")
    lines = ["*filter", f":{HOST_CHAIN} - [0:0]"]  # declared: created, or emptied, in the commit
    lines += [" ".join(["-A", HOST_CHAIN, *rule]) for rule in _host_rules(settings)]
    lines.append("COMMIT")
    try:
        restore = ["iptables-restore", "-w", "--noflush"]
        done = subprocess.run(restore, input="\n".join(lines) + "\n", capture_output=True, text=True)
    except OSError as exc:
        raise PaasError(f"cannot run iptables-restore for the egress policy: {exc}") from None
    if done.returncode:
        raise PaasError(f"iptables-restore (the egress policy): {done.stderr.strip()}")
    if _iptables("-C", *_host_jump(settings), check=False):
        _iptables("-I", *_host_jump(settings))
    _drop_old_chain()


def ensure(settings: Settings) -> bool:
    """Put back what is missing: the table or its chains (a reboot, a flushed ruleset, a hand
    edit: written again whole), this server's refused ranges and host rules (on a machine with
    several servers, as the tests run them: another one that started wrote its own). Never
    removes a range or a rule. True if anything was put back."""
    table = table_name(settings)
    before = _listing(table)
    if before is None or _shape(before) != _written.get(table):
        apply(settings)
        return True
    _nft(f"add element ip {table} refused {{ {_refused(settings)} }}\n")
    added = _listing(table) != before
    created = _iptables("-N", HOST_CHAIN, check=False) == 0
    for rule in _host_rules(settings):
        if not created and _iptables("-C", HOST_CHAIN, *rule, check=False) == 0:
            continue
        if rule != REJECT and _iptables("-C", HOST_CHAIN, *REJECT, check=False) == 0:
            _iptables("-I", HOST_CHAIN, str(_length(HOST_CHAIN)), *rule)  # before the final REJECT
        else:
            _iptables("-A", HOST_CHAIN, *rule)
        added = True
    if _iptables("-C", *_host_jump(settings), check=False):
        _iptables("-I", *_host_jump(settings))
        added = True
    return added


def _drop_old_chain() -> None:
    """The forward chain of older versions, and DOCKER-USER's jumps to it."""
    rules = subprocess.run(["iptables", "-w", "-S", "DOCKER-USER"], capture_output=True, text=True).stdout
    for rule in rules.splitlines():
        if rule.startswith("-A ") and rule.endswith(f" -j {OLD_CHAIN}"):
            _iptables("-D", *rule.split()[1:], check=False)
    if _iptables("-F", OLD_CHAIN, check=False) == 0:
        _iptables("-X", OLD_CHAIN, check=False)


def _length(chain: str) -> int:
    out = subprocess.run(["iptables", "-w", "-S", chain], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith("-A "))
