"""The front doors' limits: who may open an SSH connection before logging in, and how many; how
many live streams (logs, deploy jobs) one user and one address may hold open on the dashboard.

The SSH server and the stream server ask these rules; they keep no policy of their own. The web's
other limits (login failures, concurrent password hashes) are in `paas.services.users`; nginx's
request rates, and its own count of streams per address, in the router's templates.
"""

from __future__ import annotations

import ipaddress
import random
import threading
from collections import Counter
from dataclasses import dataclass, field

from paas.core.context import Context
from paas.errors import Throttled
from paas.store import SshKey

LOGIN_TIMEOUT = 10.0  # seconds from TCP accept to a logged-in session with a channel
PER_SOURCE = 10  # connections not yet logged in, per source address
# OpenSSH's MaxStartups start:rate:full: past `start` connections not yet logged in, refuse new
# ones with probability `rate`% rising linearly to 100% at `full`.
STARTUPS = (32, 30, 128)
MAX_CHANNELS = 1  # session channels per connection: one command per connection is served
MAX_SESSIONS_PER_KEY = 16  # logged-in connections at once per SSH key
KEY_CHECK_SECONDS = 2.0  # how often live sessions are checked against the allowed keys
# Live streams (Server-Sent Events) on the stream server, which holds STREAM_CONNECTIONS at most
# (paas/web/process.py): one user, or one address, may hold only part of it, so a token that
# opens streams in a loop leaves room for everyone else. The address cap is also nginx's.
MAX_STREAMS_PER_USER = 100
MAX_STREAMS_PER_ADDRESS = 200
STREAM_CHECK_SECONDS = 2.0  # how often an open stream checks that its session or token still holds


IPV6_SOURCE_PREFIX = 64  # one IPv6 source is a /64: what a single host or customer is given


def source_of(address: str) -> str:
    """What the pre-auth limit counts as one source: an IPv4 address (also when it arrives mapped
    into IPv6 on a dual-stack socket), or an IPv6 address's /64. A host given a /64 holds 2^64
    addresses: counted one by one, 13 of them would take every pre-auth slot."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_SOURCE_PREFIX), strict=False))
    return str(ip)


@dataclass
class PreAuthGate:
    """Counts connections that have not logged in, in total and per source (`source_of`).

    `admit` decides at accept time (so a flood costs an accept and a close); `release` is called
    once per admitted connection, when it logs in or ends, whichever is first."""

    per_source: int = PER_SOURCE
    startups: tuple[int, int, int] = STARTUPS
    rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _by_source: Counter[str] = field(default_factory=Counter)

    @property
    def pending(self) -> int:
        return sum(self._by_source.values())

    def drop_probability(self, pending: int) -> float:
        start, rate, full = self.startups
        if pending < start:
            return 0.0
        if pending >= full:
            return 1.0
        return (rate + (100 - rate) * (pending - start) / (full - start)) / 100

    def admit(self, source: str) -> bool:
        with self._lock:
            if self._by_source[source] >= self.per_source:
                return False
            p = self.drop_probability(sum(self._by_source.values()))
            if p and self.rng.random() < p:
                return False
            self._by_source[source] += 1
            return True

    def release(self, source: str) -> None:
        with self._lock:
            self._by_source[source] -= 1
            if self._by_source[source] <= 0:
                del self._by_source[source]


class KeySessions:
    """Logged-in connections per SSH key: a cap per key, and the keys to check for removal."""

    def __init__(self, limit: int = MAX_SESSIONS_PER_KEY) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._count: Counter[int] = Counter()

    def open(self, key: SshKey) -> bool:
        with self._lock:
            if self._count[key.id] >= self.limit:
                return False
            self._count[key.id] += 1
            return True

    def close(self, key: SshKey) -> None:
        with self._lock:
            self._count[key.id] -= 1
            if self._count[key.id] <= 0:
                del self._count[key.id]


def too_many_sessions(key: SshKey) -> str:
    return f"too many sessions for key {key.name!r} at once (the limit is {MAX_SESSIONS_PER_KEY}); try again"


def key_revoked(ctx: Context, key: SshKey) -> bool:
    """True once `ssh-keys:remove` took this key away (on the host, maybe in another process)."""
    current = ctx.store.get_key_by_fingerprint(key.fingerprint)
    return current is None or current.id != key.id


class StreamSlots:
    """Open live streams per user and per address in this process (the stream server is one
    gevent worker: its count is the whole server's). `open` refuses past either cap with
    Throttled; every successful `open` is paired with one `close`."""

    def __init__(
        self, per_user: int = MAX_STREAMS_PER_USER, per_address: int = MAX_STREAMS_PER_ADDRESS
    ) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self._lock = threading.Lock()
        self._users: Counter[str] = Counter()
        self._addresses: Counter[str] = Counter()

    def open(self, user: str, address: str) -> None:
        with self._lock:
            if self._users[user] >= self.per_user:
                raise Throttled(
                    f"too many live streams open for {user} (the limit is {self.per_user}); close some", 5
                )
            if self._addresses[address] >= self.per_address:
                limit = self.per_address
                raise Throttled(
                    f"too many live streams open from {address} (the limit is {limit}); close some", 5
                )
            self._users[user] += 1
            self._addresses[address] += 1

    def close(self, user: str, address: str) -> None:
        with self._lock:
            for counts, key in ((self._users, user), (self._addresses, address)):
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]

    def held(self, user: str) -> int:
        return self._users[user]
