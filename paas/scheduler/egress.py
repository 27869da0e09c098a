"""Where builds and app containers may connect: the internet (package mirrors, APIs), not this
host's own services, not link-local addresses (a cloud server's metadata service at
169.254.169.254 hands out its IAM credentials), not the private ranges an operator lists.

Every container we run (app processes, one-offs, backing services, buildpack and Dockerfile
builds) sits on a network from PAAS_NETWORK_POOL, so the policy is two iptables chains keyed on
that source range:

- EGRESS_CHAIN, jumped to from DOCKER-USER (forwarded traffic, leaving for another machine): our
  own networks and replies pass; link-local and PAAS_EGRESS_DENY are refused.
- HOST_CHAIN, jumped to from INPUT (traffic to this host's own addresses, which never crosses
  FORWARD): replies pass, and the router's ports (an app may call another app by its public
  URL); everything else (SSH, the dashboard, the registry, a database on the host) is refused.

The chains are rebuilt when the server starts and checked on every reconcile pass (a reboot
loses them; dockerd keeps DOCKER-USER's rules and never touches INPUT).
"""

from __future__ import annotations

import ipaddress
import subprocess

from paas.errors import PaasError
from paas.settings import Settings

EGRESS_CHAIN = "PAAS-EGRESS"
HOST_CHAIN = "PAAS-EGRESS-HOST"
LINK_LOCAL = "169.254.0.0/16"
REJECT = ["-j", "REJECT"]  # refused at once (port unreachable), not left to time out


def _rules(settings: Settings) -> dict[str, list[list[str]]]:
    pool = settings.network_pool
    replies = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"]
    forward = [["-d", pool, "-j", "RETURN"], replies, ["-d", LINK_LOCAL, *REJECT]]
    forward += [["-d", cidr, *REJECT] for cidr in settings.egress_deny if _v4(cidr)]
    host = [replies, ["-d", LINK_LOCAL, *REJECT]]
    router = sorted({p for p in (settings.http_port, settings.https_port) if p})
    if router:
        host.append(["-p", "tcp", "-m", "multiport", "--dports", ",".join(map(str, router)), "-j", "RETURN"])
    host.append(REJECT)
    return {EGRESS_CHAIN: forward, HOST_CHAIN: host}


def _jumps(settings: Settings) -> list[list[str]]:
    return [
        ["DOCKER-USER", "-s", settings.network_pool, "-j", EGRESS_CHAIN],
        ["INPUT", "-s", settings.network_pool, "-j", HOST_CHAIN],
    ]


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


def apply(settings: Settings) -> None:
    """Rebuild both chains from the settings and make sure the jumps to them exist. One
    `iptables-restore` transaction: a chain flushed and refilled rule by rule let containers
    through the gap (a deny rule was missing for as long as the refill took)."""
    lines = ["*filter"]
    for chain, rules in _rules(settings).items():
        lines.append(f":{chain} - [0:0]")  # declared: created, or emptied, in the same commit
        lines += [" ".join(["-A", chain, *rule]) for rule in rules]
    lines.append("COMMIT")
    try:
        restore = ["iptables-restore", "-w", "--noflush"]
        done = subprocess.run(restore, input="\n".join(lines) + "\n", capture_output=True, text=True)
    except OSError as exc:
        raise PaasError(f"cannot run iptables-restore for the egress policy: {exc}") from None
    if done.returncode:
        raise PaasError(f"iptables-restore (the egress policy): {done.stderr.strip()}")
    _iptables("-N", "DOCKER-USER", check=False)
    for jump in _jumps(settings):
        if _iptables("-C", *jump, check=False):
            _iptables("-I", *jump)


def ensure(settings: Settings) -> bool:
    """Put back what is missing (after a reboot: everything; on a machine with several PaaS
    instances, as the tests run them: a rule another instance dropped when it started); never
    removes a rule. True if anything was added."""
    added = False
    for chain, rules in _rules(settings).items():
        created = _iptables("-N", chain, check=False) == 0
        for rule in rules:
            if not created and _iptables("-C", chain, *rule, check=False) == 0:
                continue
            if chain == HOST_CHAIN and rule != REJECT and _iptables("-C", chain, *REJECT, check=False) == 0:
                _iptables("-I", chain, str(_length(chain)), *rule)  # before the final REJECT
            else:
                _iptables("-A", chain, *rule)
            added = True
    _iptables("-N", "DOCKER-USER", check=False)
    for jump in _jumps(settings):
        if _iptables("-C", *jump, check=False):
            _iptables("-I", *jump)
            added = True
    return added


def _length(chain: str) -> int:
    out = subprocess.run(["iptables", "-w", "-S", chain], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith("-A "))
