"""What the router is told about an app: its hostnames, upstreams and what plugins add.

Plugins add server-level directives and locations through `paas_nginx_app`; the router
validates every one (a word, then plain arguments: no quotes, braces, semicolons or variables)
before it reaches nginx.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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


@dataclass
class RouteExtras:
    """Additions to one app's server block, filled by plugins."""

    server: list[str] = field(default_factory=list)
    locations: dict[str, list[str]] = field(default_factory=dict)

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

    @property
    def serves(self) -> bool:
        return bool(self.upstreams) or self.extras.replaces_proxy
