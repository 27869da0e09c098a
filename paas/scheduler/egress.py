"""Where builds and app containers may connect: the internet (package mirrors, APIs), not this
host's own services, not link-local addresses (a cloud server's metadata service at
169.254.169.254 hands out its IAM credentials), not the private ranges an operator lists.

Every container we run (app processes, one-offs, backing services, buildpack and Dockerfile
builds) sits on a network from PAAS_NETWORK_POOL, so the policy is keyed on that source range,
in an nftables table of our own per pool (`table_name`) with a base chain on each of two hooks:

- forward (leaving for another machine): our own networks and replies pass; link-local and
  PAAS_EGRESS_DENY (the set `refused`) are refused;
- input (this host's own addresses, which forwarded traffic never reaches): replies pass, and
  the router's ports (the set `router`: an app may call another app by its public URL);
  everything else (SSH, the dashboard, the registry, a database on the host) is refused.

Why not iptables chains jumped to from DOCKER-USER and INPUT, as before: docker moves the jump
to DOCKER-USER back on top of FORWARD when it makes a network, but networks made side by side can
leave one network's own `-i br-… ! -o br-… -j ACCEPT` above that jump until the next network is
made, and every container on it skipped the policy (seen in a 200-app bench, and in the suite,
where a `run` one-off reached the metadata service). A base chain of our own sees every packet
on its hook whatever docker's chains accept, and its reject is final; docker never touches it.
And checking the iptables chains cost 60-70 ms of CPU (each `iptables` call reads the whole
ruleset, docker's rules for 200 networks included); one listing of the table costs 4.

The table is written whole when the server starts and checked on reconcile passes (a reboot or
a flushed ruleset loses it). Servers sharing a host and a pool (as the tests run them) share the
table: a server that starts writes its own settings, and the others add theirs back at their
next check (a check only adds to the sets; a table whose chains differ is written again).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess

from paas.errors import PaasError
from paas.settings import Settings

LINK_LOCAL = "169.254.0.0/16"
# The iptables chains the policy lived in before, and their parents (removed at the server's start).
OLD_CHAINS = {"PAAS-EGRESS": "DOCKER-USER", "PAAS-EGRESS-HOST": "INPUT"}
_SET = re.compile(r"\tset (\w+) \{\n(.*?)\n\t\}\n", re.S)  # a set's block in a listing
_ELEMENTS = re.compile(r"elements = \{([^}]*)\}")

_written: dict[str, str] = {}  # each table's chains, as this process last wrote them


def table_name(settings: Settings) -> str:
    """`paas_egress_10_199_0_0_16`: servers with pools of their own on one host keep their own
    policies; servers sharing a pool share it."""
    pool = ipaddress.ip_network(settings.network_pool, strict=False)
    return "paas_egress_" + str(pool).replace(".", "_").replace("/", "_")


def _v4(cidr: str) -> bool:
    return ipaddress.ip_network(cidr, strict=False).version == 4


def _refused(settings: Settings) -> list[str]:
    return [LINK_LOCAL, *(c for c in settings.egress_deny if _v4(c))]


def _router(settings: Settings) -> list[str]:
    return [str(p) for p in sorted({settings.http_port, settings.https_port}) if p]


def _elements(items: list[str]) -> str:
    return f"\t\telements = {{ {', '.join(items)} }}\n" if items else ""


def ruleset(settings: Settings) -> str:
    """The whole table, as `nft -f` reads it: declared, deleted and written again in one
    transaction (the empty declaration first, so the delete never fails on a new machine)."""
    pool, table = settings.network_pool, table_name(settings)
    return (
        f"table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n"
        "\tset refused {\n\t\ttype ipv4_addr; flags interval; auto-merge;\n"
        + _elements(_refused(settings))
        + "\t}\n\tset router {\n\t\ttype inet_service; flags interval; auto-merge;\n"
        + _elements(_router(settings))
        + "\t}\n"
        "\tchain forward {\n\t\ttype filter hook forward priority -1; policy accept;\n"
        f"\t\tip saddr {pool} jump containers\n\t}}\n"
        f"\tchain containers {{\n\t\tip daddr {pool} return\n"
        "\t\tct state established,related return\n\t\tip daddr @refused reject\n\t}\n"
        "\tchain input {\n\t\ttype filter hook input priority -1; policy accept;\n"
        f"\t\tip saddr {pool} jump to_host\n\t}}\n"
        "\tchain to_host {\n\t\tct state established,related return\n"
        f"\t\tip daddr {LINK_LOCAL} reject\n\t\ttcp dport @router return\n\t\treject\n\t}}\n"
        "}\n"
    )


def _nft(script: str) -> None:
    try:
        done = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    except OSError as exc:
        raise PaasError(f"cannot run nft for the egress policy: {exc}") from None
    if done.returncode:
        raise PaasError(f"nft (the egress policy): {done.stderr.strip()}")


def _listing(table: str) -> str | None:
    try:
        done = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True)
    except OSError as exc:
        raise PaasError(f"cannot run nft for the egress policy: {exc}") from None
    return done.stdout if done.returncode == 0 else None


def _chains(listing: str) -> str:
    """A table's listing without its sets: what `ensure` compares with what it wrote."""
    return _SET.sub("", listing)


def _members(listing: str) -> dict[str, list[str]]:
    """Each set's elements, as listed (`10.252.0.0/15`, `169.254.0.0/16`, `80`, `8000-8080`)."""
    found: dict[str, list[str]] = {}
    for block in _SET.finditer(listing):
        elements = _ELEMENTS.search(block.group(2))
        found[block.group(1)] = [
            e.strip() for e in (elements.group(1) if elements else "").split(",") if e.strip()
        ]
    return found


def _covered(wanted: str, listed: list[str], as_int: bool) -> bool:
    """Whether `wanted` (a CIDR, or a port) is inside one of the listed elements (auto-merge
    joins neighbours: 10.252.0.0/16 and 10.253.0.0/16 are listed as 10.252.0.0/15)."""
    for element in listed:
        low, _, high = element.partition("-")
        if as_int:
            if int(low) <= int(wanted) <= int(high or low):
                return True
            continue
        net = ipaddress.ip_network(wanted, strict=False)
        if high:
            start, end = ipaddress.ip_address(low), ipaddress.ip_address(high)
            if start <= net.network_address and net.broadcast_address <= end:
                return True
        elif net.subnet_of(ipaddress.ip_network(low, strict=False)):
            return True
    return False


def apply(settings: Settings) -> None:
    """Write the table whole from the settings (one transaction: there is never a moment
    without a rule), then drop the iptables chains an older version kept the policy in."""
    table = table_name(settings)
    _nft(ruleset(settings))
    _written[table] = _chains(_listing(table) or "")
    _drop_old_chains()


def ensure(settings: Settings) -> bool:
    """Put back what is missing, from one listing of the table: the table or its chains (a
    reboot, a flushed ruleset, a hand edit: written again whole), this server's refused ranges
    and router ports (on a host with several servers, as the tests run them: another one that
    started wrote its own). Never removes an element. True if anything was put back."""
    table = table_name(settings)
    listing = _listing(table)
    if listing is None or _chains(listing) != _written.get(table):
        apply(settings)
        return True
    listed = _members(listing)
    missing = {
        "refused": [c for c in _refused(settings) if not _covered(c, listed.get("refused", []), False)],
        "router": [p for p in _router(settings) if not _covered(p, listed.get("router", []), True)],
    }
    script = "".join(
        f"add element ip {table} {name} {{ {', '.join(items)} }}\n"
        for name, items in missing.items()
        if items
    )
    if script:
        _nft(script)
    return bool(script)


def _drop_old_chains() -> None:
    for chain, parent in OLD_CHAINS.items():
        rules = subprocess.run(["iptables", "-w", "-S", parent], capture_output=True, text=True).stdout
        for rule in rules.splitlines():
            if rule.startswith("-A ") and rule.endswith(f" -j {chain}"):
                subprocess.run(["iptables", "-w", "-D", *rule.split()[1:]], capture_output=True)
        if subprocess.run(["iptables", "-w", "-F", chain], capture_output=True).returncode == 0:
            subprocess.run(["iptables", "-w", "-X", chain], capture_output=True)
