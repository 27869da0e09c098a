"""What the router is told about an app: its hostnames, upstreams and what plugins add.

Plugins add server-level directives and locations through `paas_nginx_app`; the router
validates every one (a word, then plain arguments: no quotes, braces, semicolons or variables)
before it reaches nginx.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class RouteExtras:
    """Additions to one app's server block, filled by plugins; `tls` (one plugin sets it) adds
    an HTTPS server block, and `acme_root` a folder answering HTTP-01 challenges over HTTP."""

    server: list[str] = field(default_factory=list)
    locations: dict[str, list[str]] = field(default_factory=dict)
    tls: RouteTls | None = None
    acme_root: str | None = None
    metrics_log: str | None = None  # a file each proxied request is logged to, tagged (see set_metrics_log)

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
