"""The egress policy's check on reconcile passes (services/reconcile.guard_egress): it comes
every EGRESS_CHECK_SECONDS whatever the pass interval. Before, the time was reset by every pass,
so with passes every 5 s (the default) the check never came and a flushed policy stayed open."""

from __future__ import annotations

import pytest

from paas.core import nft
from paas.services import reconcile


def test_the_check_comes_every_30_seconds_with_a_pass_every_5(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    calls: list[tuple[str, float]] = []
    monkeypatch.setattr(reconcile.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(reconcile.egress, "apply", lambda settings: calls.append(("apply", now[0])))
    monkeypatch.setattr(
        reconcile.egress, "ensure", lambda settings: calls.append(("ensure", now[0])) or False
    )
    monkeypatch.setattr(reconcile, "_egress", {"last": 0.0})

    class Ctx:
        settings = None

    reconcile.guard_egress(Ctx(), rebuild=True)  # the server starts
    for _ in range(24):  # two minutes of passes, 5 s apart
        now[0] += 5
        reconcile.guard_egress(Ctx())
    assert calls == [
        ("apply", 1000.0),
        ("ensure", 1030.0),
        ("ensure", 1060.0),
        ("ensure", 1090.0),
        ("ensure", 1120.0),
    ]


def test_a_failing_check_waits_its_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    tried: list[float] = []

    def ensure(settings: object) -> bool:
        tried.append(now[0])
        raise reconcile.PaasError("cannot run nft for the egress policy")

    monkeypatch.setattr(reconcile.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(reconcile.egress, "ensure", ensure)
    monkeypatch.setattr(reconcile, "_egress", {"last": 0.0})

    class Ctx:
        settings = None

    for _ in range(12):  # a minute of passes, 5 s apart
        now[0] += 5
        try:
            reconcile.guard_egress(Ctx())
        except reconcile.PaasError:
            pass  # the pass logs it and goes on
    assert tried == [1005.0, 1035.0]


LISTING = """table ip paas_egress_10_199_0_0_16 {
\tset refused {
\t\ttype ipv4_addr
\t\tflags interval
\t\tauto-merge
\t\telements = { 10.0.0.0-10.0.255.255, 10.252.0.0/15,
\t\t\t     169.254.0.0/16 }
\t}

\tset router {
\t\ttype inet_service
\t\tflags interval
\t\tauto-merge
\t\telements = { 18080-18081, 18443 }
\t}

\tchain forward {
\t\ttype filter hook forward priority filter - 1; policy accept;
\t\tip saddr 10.199.0.0/16 jump containers
\t}
}
"""


def test_the_check_reads_the_sets_as_nft_lists_them() -> None:
    """One listing tells the check what is there: nft merges neighbours (10.252/16 and 10.253/16
    into 10.252/15), lists some as ranges and wraps long lines; the chains are compared apart."""
    listed = nft.members(LISTING)
    assert listed == {
        "refused": ["10.0.0.0-10.0.255.255", "10.252.0.0/15", "169.254.0.0/16"],
        "router": ["18080-18081", "18443"],
    }
    covered = nft.covered
    assert covered("10.253.0.0/16", listed["refused"])  # inside the merged /15
    assert covered("10.0.7.0/24", listed["refused"])  # inside the range
    assert not covered("10.0.0.0/8", listed["refused"])  # wider than anything listed
    assert not covered("192.168.0.0/16", listed["refused"])
    assert covered("18081", listed["router"], port=True) and not covered("18082", listed["router"], port=True)
    assert covered("18080-18081", listed["router"], port=True)
    assert not covered("18080-18443", listed["router"], port=True)
    chains = nft.chains(LISTING)
    assert "set " not in chains and "chain forward" in chains
