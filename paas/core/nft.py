"""Our own nftables tables (`nft`): the egress policy's and the swarm's guard of the nodes.

Why tables of our own and not iptables chains off DOCKER-USER: docker moves FORWARD's jump to
DOCKER-USER back on top when it makes a network, but networks made side by side can leave one
network's own `-i br-… ! -o br-… -j ACCEPT` above that jump until the next network is made, and
every container on it skipped DOCKER-USER (seen in a 200-app bench and in the suite). A base
chain of our own sees every packet on its hook whatever docker's chains accept, and its drop or
reject is final; docker never touches it. And reading one table costs about 4 ms of CPU, where
each `iptables` call reads the whole ruleset (docker's rules of 200 networks: 7-8 ms a call).

Checks read one listing (`listing`), compare its chains with what was written (`chains`) and its
sets' elements with what this server needs (`members`, `covered`: nft merges neighbours and lists
some as ranges).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from collections.abc import Callable

from paas.errors import PaasError

_SET = re.compile(r"\tset (\w+) \{\n(.*?)\n\t\}\n", re.S)  # a set's block in a listing
_ELEMENTS = re.compile(r"elements = \{([^}]*)\}")


def run(script: str, what: str) -> None:
    """One `nft -f` transaction: all of `script` or nothing. `what` names it in errors."""
    try:
        done = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    except OSError as exc:
        raise PaasError(f"cannot run nft for {what}: {exc}") from None
    if done.returncode:
        raise PaasError(f"nft ({what}): {done.stderr.strip()}")


def rewrite(table: str, body: str) -> str:
    """`nft -f` input that writes `table` (family ip) anew with `body` (its sets and chains) in
    one transaction: declared empty first, so deleting it never fails where it does not exist."""
    return f"table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n{body}}}\n"


def listing(table: str, what: str) -> str | None:
    """`nft list table ip <table>`; None when there is no such table."""
    try:
        done = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True)
    except OSError as exc:
        raise PaasError(f"cannot run nft for {what}: {exc}") from None
    return done.stdout if done.returncode == 0 else None


def drop_old_iptables(
    parent: str, chains: tuple[str, ...], also: Callable[[str], bool] = lambda rule: False
) -> None:
    """What an older version of ours kept in iptables: `parent`'s rules that jump to one of
    `chains` (or that `also` picks, as `iptables -S` prints them), then those chains. No iptables
    on the host: nothing to drop."""
    try:
        rules = subprocess.run(["iptables", "-w", "-S", parent], capture_output=True, text=True).stdout
        for rule in rules.splitlines():
            if rule.startswith("-A ") and (any(rule.endswith(f" -j {c}") for c in chains) or also(rule)):
                subprocess.run(["iptables", "-w", "-D", *rule.split()[1:]], capture_output=True)
        for chain in chains:
            if subprocess.run(["iptables", "-w", "-F", chain], capture_output=True).returncode == 0:
                subprocess.run(["iptables", "-w", "-X", chain], capture_output=True)
    except OSError:
        pass


def chains(text: str) -> str:
    """A table's listing without its sets: the rules, as nft prints them back."""
    return _SET.sub("", text)


def members(text: str) -> dict[str, list[str]]:
    """Each set's elements, as listed (`10.252.0.0/15`, `169.254.0.0/16`, `80`, `8000-8080`)."""
    found: dict[str, list[str]] = {}
    for block in _SET.finditer(text):
        elements = _ELEMENTS.search(block.group(2))
        listed = elements.group(1).split(",") if elements else []
        found[block.group(1)] = [e.strip() for e in listed if e.strip()]
    return found


def covered(wanted: str, listed: list[str], port: bool = False) -> bool:
    """Whether `wanted` (a CIDR or an address; with `port`, a port or a `lo-hi` range) is inside
    one of the listed elements (10.253.0.0/16 is inside a listed 10.252.0.0/15)."""
    if port:
        lo, _, hi = wanted.partition("-")
        for element in listed:
            low, _, high = element.partition("-")
            if int(low) <= int(lo) and int(hi or lo) <= int(high or low):
                return True
        return False
    net = ipaddress.ip_network(wanted, strict=False)
    for element in listed:
        low, _, high = element.partition("-")
        if high:
            if ipaddress.ip_address(
                low
            ) <= net.network_address and net.broadcast_address <= ipaddress.ip_address(high):
                return True
        elif net.subnet_of(ipaddress.ip_network(low, strict=False)):  # type: ignore[arg-type]
            return True
    return False
