"""One webhook request: the URL checked, the address guarded, the body signed, one POST.

Signing is the Standard Webhooks scheme by its own library: `webhook-id` (the delivery's id, the
same on every retry), `webhook-timestamp` (this attempt's), and `webhook-signature` (`v1,` +
base64 HMAC-SHA256 of `id.timestamp.body` with the hook's `whsec_` secret), so any receiver's
Standard Webhooks library verifies it.

Where it may go: http(s) only, no credentials in the URL. A hook added by someone who is not an
admin may not reach loopback, private, link-local or other special addresses (the server's own
dashboard, docker, a cloud's metadata service): every address the name resolves to is checked
at each attempt, and the connection goes to the address that was checked (no second lookup a
rebinding DNS server could answer differently). Redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import urllib3
from standardwebhooks.webhooks import Webhook

from paas.plugin_api import PaasError

TIMEOUT = urllib3.Timeout(connect=5.0, read=10.0)
USER_AGENT = "paas-webhooks/1"
MAX_URL = 2000


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent


def parse_url(url: str) -> Target:
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        raise PaasError("a webhook URL must be one line of at most 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise PaasError(f"invalid webhook URL {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PaasError(f"invalid webhook URL {url!r}: use http:// or https:// and a host")
    if parts.username or parts.password:
        raise PaasError("a webhook URL may not hold a user or password: put a token in its path or query")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path)


def _special(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def resolve(target: Target, private_ok: bool) -> str:
    """The address to connect to; refused when a non-admin's hook points somewhere private."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PaasError(f"cannot resolve {target.host}: {exc.strerror}") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise PaasError(f"cannot resolve {target.host}")
    if not private_ok and any(_special(a) for a in addresses):
        raise PaasError(f"{target.host} is a private or local address: only an admin's webhook may reach one")
    return addresses[0]


def check(url: str, private_ok: bool) -> None:
    """At `notifications:add`: the URL's shape, and where it points (as at every attempt)."""
    resolve(parse_url(url), private_ok)


def headers(secret: str, msg_id: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(url: str, secret: str, msg_id: str, body: bytes, private_ok: bool) -> Outcome:
    """One attempt; never raises."""
    started = time.monotonic()
    try:
        target = parse_url(url)
        address = resolve(target, private_ok)
        common = {"port": target.port, "timeout": TIMEOUT, "retries": False, "maxsize": 1}
        if target.scheme == "https":
            pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
                address,
                server_hostname=target.host,
                assert_hostname=target.host,
                ssl_context=ssl.create_default_context(),
                **common,
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, **common)
        name = f"[{target.host}]" if ":" in target.host else target.host
        default = target.port == (443 if target.scheme == "https" else 80)
        host = name if default else f"{name}:{target.port}"
        with pool:
            resp = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers={"host": host, **headers(secret, msg_id, body)},
                redirect=False,
                assert_same_host=False,
                preload_content=False,
            )
            resp.read(4096, decode_content=False)
            resp.release_conn()
        status = resp.status
        return Outcome(status, None if 200 <= status < 300 else f"HTTP {status}", time.monotonic() - started)
    except PaasError as exc:
        return Outcome(None, str(exc), time.monotonic() - started)
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        return Outcome(None, _why(exc), time.monotonic() - started)


def _why(exc: Exception) -> str:
    """One short line for the delivery log (NewConnectionError is a ConnectTimeoutError too)."""
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        found = re.search(r"\[Errno -?\d+\] ([^)\]]+)", str(exc))
        return f"cannot connect: {found.group(1) if found else exc}"[:300]
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return f"no connection within {TIMEOUT.connect_timeout:g} s"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return f"no answer within {TIMEOUT.read_timeout:g} s"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return f"TLS failed: {exc}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
