"""Door 1: the limits of the SSH server before and after login (the rules in services.throttle)."""

from __future__ import annotations

import random
import threading

from paas.git_receiver.server import _Resizer
from paas.services import throttle
from paas.store import SshKey


def test_one_source_holds_at_most_per_source_connections_before_login() -> None:
    gate = throttle.PreAuthGate(per_source=3, startups=(100, 30, 200))
    assert [gate.admit("203.0.113.9") for _ in range(5)] == [True, True, True, False, False]
    assert gate.admit("198.51.100.1")  # another address is not affected
    gate.release("203.0.113.9")
    assert gate.admit("203.0.113.9")


def test_past_start_new_connections_are_dropped_at_random_then_all() -> None:
    gate = throttle.PreAuthGate(per_source=1000, startups=(10, 30, 20), rng=random.Random(1))
    assert all(gate.admit("a") for _ in range(10))
    assert gate.drop_probability(10) == 0.3
    assert gate.drop_probability(15) == 0.65
    assert gate.drop_probability(20) == 1.0
    tries = [gate.admit("b") for _ in range(200)]
    assert any(tries) and not all(tries)  # some got through between start and full ...
    assert gate.pending == 20  # ... and none past full
    assert not gate.admit("c")


def test_sessions_per_key_are_capped() -> None:
    key = SshKey(1, "alice", "SHA256:x", "ssh-ed25519 AAAA", True, "now")
    other = SshKey(2, "bob", "SHA256:y", "ssh-ed25519 BBBB", False, "now")
    sessions = throttle.KeySessions(limit=2)
    assert sessions.open(key) and sessions.open(key) and not sessions.open(key)
    assert sessions.open(other)
    sessions.close(key)
    assert sessions.open(key)


class _Stdio:
    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []
        self.gone = False
        self.applied = threading.Event()

    def disconnected(self) -> bool:
        return self.gone

    def resized(self, cols: int, rows: int) -> None:
        self.sizes.append((cols, rows))
        if (cols, rows) == (200, 50):
            self.applied.set()


def test_window_changes_use_one_thread_and_end_on_the_latest_size() -> None:
    stdio = _Stdio()
    resizer = _Resizer(stdio)  # type: ignore[arg-type]
    before = threading.active_count()
    for i in range(5000):
        resizer.change(80 + i % 100, 24)
    resizer.change(200, 50)
    assert threading.active_count() <= before + 1
    assert stdio.applied.wait(5)
    assert len(stdio.sizes) < 5001
    stdio.gone = True


def test_an_ipv6_source_is_its_64_and_a_mapped_ipv4_address_is_itself() -> None:
    assert throttle.source_of("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert throttle.source_of("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert throttle.source_of("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert throttle.source_of("::ffff:203.0.113.9") == "203.0.113.9"
    assert throttle.source_of("203.0.113.9") == "203.0.113.9"
    assert throttle.source_of("fe80::1%eth0") == "fe80::/64"
    gate = throttle.PreAuthGate(per_source=10, startups=(1000, 30, 2000))
    one_64 = [throttle.source_of(f"2001:db8:1:2::{i:x}") for i in range(1, 21)]
    assert sum(gate.admit(s) for s in one_64) == 10
    assert gate.admit(throttle.source_of("2001:db8:1:3::1"))
