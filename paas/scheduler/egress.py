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

Not iptables chains jumped to from DOCKER-USER and INPUT, as before: docker's own rules of a
network made beside another can sit above DOCKER-USER (see paas/core/nft.py), and each check of
those chains cost 60-70 ms of CPU beside 200 apps; one listing of the table costs 4-7.

The table is written whole when the server starts and checked on reconcile passes (a reboot or
a flushed ruleset loses it). Servers sharing a host and a pool (as the tests run them) share the
table: a server that starts writes its own settings, and the others add theirs back at their
next check (a check only adds to the sets; a table whose chains differ is written again).
"""

from __future__ import annotations

import ipaddress

from paas.core import nft
from paas.settings import Settings

WHAT = "the egress policy"
LINK_LOCAL = "169.254.0.0/16"
# The iptables chains the policy lived in before, and their parents (removed at the server's start).
OLD_CHAINS = {"PAAS-EGRESS": "DOCKER-USER", "PAAS-EGRESS-HOST": "INPUT"}
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
    """The whole table, as `nft -f` reads it, written anew in one transaction."""
    pool, table = settings.network_pool, table_name(settings)
    return nft.rewrite(
        table,
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
        f"\t\tip daddr {LINK_LOCAL} reject\n\t\ttcp dport @router return\n\t\treject\n\t}}\n",
    )


def apply(settings: Settings) -> None:
    """Write the table whole from the settings (one transaction: there is never a moment
    without a rule), then drop the iptables chains an older version kept the policy in."""
    table = table_name(settings)
    nft.run(ruleset(settings), WHAT)
    _written[table] = nft.chains(nft.listing(table, WHAT) or "")
    _drop_old_chains()


def ensure(settings: Settings) -> bool:
    """Put back what is missing, from one listing of the table: the table or its chains (a
    reboot, a flushed ruleset, a hand edit: written again whole), this server's refused ranges
    and router ports (on a host with several servers, as the tests run them: another one that
    started wrote its own). Never removes an element. True if anything was put back."""
    table = table_name(settings)
    listing = nft.listing(table, WHAT)
    if listing is None or nft.chains(listing) != _written.get(table):
        apply(settings)
        return True
    listed = nft.members(listing)
    missing = {
        "refused": [c for c in _refused(settings) if not nft.covered(c, listed.get("refused", []))],
        "router": [p for p in _router(settings) if not nft.covered(p, listed.get("router", []), port=True)],
    }
    script = "".join(
        f"add element ip {table} {name} {{ {', '.join(items)} }}\n"
        for name, items in missing.items()
        if items
    )
    if script:
        nft.run(script, WHAT)
    return bool(script)


def _drop_old_chains() -> None:
    for chain, parent in OLD_CHAINS.items():
        nft.drop_old_iptables(parent, (chain,))
