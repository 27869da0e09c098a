"""What a build gives back (shared by the buildpack and Dockerfile builders)."""

from __future__ import annotations

from dataclasses import dataclass

from paas.core.names import APP_PORT
from paas.errors import PaasError


class BuildFailed(PaasError):
    """The build did not produce an image; nothing that runs was changed."""


@dataclass(frozen=True)
class BuildResult:
    image: str
    processes: dict[str, str]
    buildpack: str
    port: int = APP_PORT  # what $PORT is and what the router proxies to (EXPOSE for Dockerfiles)
    stack: str = ""
