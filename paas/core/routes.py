"""What the router is told about an app: its hostnames, upstreams and what plugins add.

Plugins add server-level directives and locations through `paas_nginx_app`; the router
validates every one (a word, then plain arguments: no quotes, braces, semicolons or variables)
before it reaches nginx.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from paas.core.names import NGINX_LOG_DIR, NGINX_LOG_STREAMS
from paas.errors import PaasError

_DIRECTIVE = re.compile(r"^[a-z_][a-z0-9_]*(?: [A-Za-z0-9_./@=:*%+,-]+)*$")
_LOCATION = re.compile(r"^(?:= )?(?:/[A-Za-z0-9_./-]*|@[a-z_][a-z0-9_]*)$")


def directive(text: str) -> str:
    """One nginx directive without its `;`, refused unless it is plain words."""
    if not isinstance(text, str) or not _DIRECTIVE.fullmatch(text):
        raise PaasError(f"refusing nginx directive {text!r}")
    return text


def location_path(text: str) -> str:
    if not isinstance(text, str) or not _LOCATION.fullmatch(text):
        raise PaasError(f"refusing nginx location {text!r}")
    return text


_CERT_PATH = re.compile(r"^/[A-Za-z0-9_./-]+$")


@dataclass(frozen=True)
class RouteTls:
    """A certificate the router serves over HTTPS for the hostnames it covers (SNI).

    `cert_path` holds the leaf then its chain (PEM), `key_path` the key (mode 0600: nginx's
    master reads it as root). `stapling` when the leaf names an OCSP responder."""

    cert_path: str
    key_path: str
    hostnames: tuple[str, ...] = ()  # the names the certificate covers (its SANs)
    redirect: bool = True  # plain HTTP answers 301 to https (ACME challenges excepted)
    hsts: bool = False
    stapling: bool = False
    fingerprint: str = ""  # in the rendered config, so a new certificate at the same path reloads nginx

    def __post_init__(self) -> None:
        for p in (self.cert_path, self.key_path):
            if not isinstance(p, str) or not _CERT_PATH.fullmatch(p) or ".." in Path(p).parts:
                raise PaasError(f"refusing certificate path {p!r}")


ACME_CHALLENGE = "/.well-known/acme-challenge/"

# An X-Forwarded-* header's value: one of these variables, or a plain word (a port, a scheme, an
# address). Any other variable could hand the app what it must not see (another header, a cookie
# of a request it did not get); quotes, spaces, `;` and braces could end the directive.
FORWARDED_VARIABLES = frozenset(
    {
        "$remote_addr",
        "$proxy_add_x_forwarded_for",
        "$http_x_forwarded_for",
        "$realip_remote_addr",
        "$scheme",
        "$http_x_forwarded_proto",
        "$server_port",
        "$http_x_forwarded_port",
        "$https",
        "$paas_forwarded_for",
        "$paas_forwarded_proto",
        "$paas_forwarded_port",
    }
)
_FORWARDED_WORD = re.compile(r"^[A-Za-z0-9.:_-]{1,64}$")
_LOG_FORMAT = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_LOG_PATH = re.compile(r"^/[A-Za-z0-9_./-]{1,255}$")


def forwarded_value(text: str) -> str:
    """A header value nginx fills in: an allowed variable or a plain word."""
    if not isinstance(text, str) or not (text in FORWARDED_VARIABLES or _FORWARDED_WORD.fullmatch(text)):
        allowed = ", ".join(sorted(FORWARDED_VARIABLES))
        raise PaasError(
            f"refusing header value {text!r}: use a plain word (a port, http, https) or one of {allowed}"
        )
    return text


def bind_address(text: str, version: int) -> str:
    """An IPv4 or IPv6 address nginx may listen on (checked here for its form only)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise PaasError(f"refusing bind address {text!r}: not an IPv{version} address") from None
    if address.version != version or str(address) != text.lower():
        raise PaasError(f"refusing bind address {text!r}: not an IPv{version} address in its usual form")
    return str(address)


def log_format(text: str) -> str:
    if not isinstance(text, str) or not _LOG_FORMAT.fullmatch(text):
        raise PaasError(f"refusing log format {text!r}: the name of a log_format (like combined)")
    return text


def log_path(text: str, forbidden: tuple[Path, ...] = ()) -> str:
    """A log file nginx's master (root) opens for appending: one of the standard streams or a
    plain file under /var/log/nginx, never a folder of ours (`forbidden`), no `..`."""
    if text in NGINX_LOG_STREAMS:
        return text
    parts = Path(text).parts if isinstance(text, str) else ()
    if (
        not isinstance(text, str)
        or not _LOG_PATH.fullmatch(text)
        or any(p in (".", "..") for p in text.split("/")[1:])
        or "//" in text
        or text.endswith("/")
        or parts[: len(NGINX_LOG_DIR.parts)] != NGINX_LOG_DIR.parts
        or len(parts) <= len(NGINX_LOG_DIR.parts)
    ):
        streams = ", ".join(NGINX_LOG_STREAMS)
        raise PaasError(f"refusing log path {text!r}: use a file under {NGINX_LOG_DIR}/ or one of {streams}")
    for folder in forbidden:
        if Path(text).is_relative_to(folder):
            raise PaasError(f"refusing log path {text!r}: it is inside {folder}, a folder of the platform's")
    return text


@dataclass(frozen=True)
class ProxyOptions:
    """What an app's `nginx` properties change in its server blocks beyond plain directives:
    the X-Forwarded-* headers, HSTS, the addresses it listens on, its logs and the upstream's
    idle connections. Every field is checked again here: the router renders them as they are.
    `hsts` None leaves HSTS to the certificate's own setting (certs:hsts)."""

    forwarded_for: str = "$paas_forwarded_for"
    forwarded_proto: str = "$paas_forwarded_proto"
    forwarded_port: str = "$paas_forwarded_port"
    forwarded_ssl: str = ""  # on / off: an X-Forwarded-Ssl header; "" none
    hsts: bool | None = None
    hsts_max_age: int = 63072000
    hsts_include_subdomains: bool = False
    hsts_preload: bool = False
    bind_ipv4: str = ""  # "" the server's own (PAAS_HTTP_BIND / PAAS_HTTPS_BIND)
    bind_ipv6: str = ""  # "" no IPv6 listener
    access_log: str = ""  # "" the router's own; "off" none
    access_log_format: str = ""  # "" combined
    error_log: str = ""  # "" the router's own
    keepalive: int = 16  # idle connections kept to the upstream (0: none)

    def __post_init__(self) -> None:
        for value in (self.forwarded_for, self.forwarded_proto, self.forwarded_port):
            forwarded_value(value)
        if self.forwarded_ssl not in ("", "on", "off"):
            raise PaasError(f"refusing X-Forwarded-Ssl value {self.forwarded_ssl!r}")
        if not (isinstance(self.hsts_max_age, int) and 0 <= self.hsts_max_age <= 999_999_999):
            raise PaasError(f"refusing HSTS max-age {self.hsts_max_age!r}")
        if not (isinstance(self.keepalive, int) and 0 <= self.keepalive <= 1024):
            raise PaasError(f"refusing upstream keepalive {self.keepalive!r}")
        if self.bind_ipv4:
            bind_address(self.bind_ipv4, 4)
        if self.bind_ipv6:
            bind_address(self.bind_ipv6, 6)
        if self.access_log and self.access_log != "off":
            log_path(self.access_log)
        if self.access_log_format:
            log_format(self.access_log_format)
        if self.error_log:
            log_path(self.error_log)

    @property
    def hsts_header(self) -> str:
        """The Strict-Transport-Security value (plain digits and fixed words)."""
        return (
            f"max-age={self.hsts_max_age}"
            + ("; includeSubDomains" if self.hsts_include_subdomains else "")
            + ("; preload" if self.hsts_preload else "")
        )


@dataclass
class RouteExtras:
    """Additions to one app's server block, filled by plugins; `tls` (one plugin sets it) adds
    an HTTPS server block, and `acme_root` a folder answering HTTP-01 challenges over HTTP."""

    server: list[str] = field(default_factory=list)
    locations: dict[str, list[str]] = field(default_factory=dict)
    tls: RouteTls | None = None
    acme_root: str | None = None
    metrics_log: str | None = None  # a file each proxied request is logged to, tagged (see set_metrics_log)
    proxy: ProxyOptions = field(default_factory=ProxyOptions)  # the app's nginx properties (routing.py)

    def set_metrics_log(self, path: str) -> None:
        """Log every request of the app to `path` as one line of plain fields, tagged with the app
        and the release of the process that answered (nginx maps the upstream's address):
        `<msec> <app> <release or -> <status> <bytes sent> <upstream time or -> <request time>`."""
        if not _CERT_PATH.fullmatch(path) or ".." in Path(path).parts:
            raise PaasError(f"refusing metrics log path {path!r}")
        self.metrics_log = path

    def set_tls(self, tls: RouteTls | None) -> None:
        self.tls = tls

    def set_acme_root(self, folder: str) -> None:
        if not _CERT_PATH.fullmatch(folder) or ".." in Path(folder).parts:
            raise PaasError(f"refusing challenge folder {folder!r}")
        self.acme_root = folder.rstrip("/")

    def add_directive(self, text: str) -> None:
        self.server.append(directive(text))

    def add_location(self, path: str, directives: list[str]) -> None:
        self.locations[location_path(path)] = [directive(d) for d in directives]

    @property
    def replaces_proxy(self) -> bool:
        """A plugin answers `/` itself (maintenance): the app need not be running."""
        return "/" in self.locations


@dataclass(frozen=True)
class Route:
    app: str
    hostnames: list[str]
    upstreams: list[str]
    extras: RouteExtras = field(default_factory=RouteExtras)
    releases: dict[str, int] = field(default_factory=dict)  # upstream -> the release it runs (metrics tags)

    @property
    def serves(self) -> bool:
        return bool(self.upstreams) or self.extras.replaces_proxy
