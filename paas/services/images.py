"""Which images an app may be deployed from (`git:from-image`), and getting one onto this host.

An image is the tenant's program as much as a pushed Dockerfile, and a local image may be another
tenant's app or one of the platform's own. So: an image under a prefix the operator listed in
PAAS_IMAGE_SOURCES (`registry.example.com/team/`) may be deployed by anyone who may deploy the
app, and is pulled when missing; any other image only by an admin, and only if it is already on
this host. Never one of the platform's images (`paas/...`, or any image carrying its labels).
"""

from __future__ import annotations

import re

import docker
from docker.models.images import Image

from paas.core import names
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.services import access

# [registry[:port]/]path[:tag][@sha256:digest], lowercase path components (docker's grammar).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REFERENCE_RE = re.compile(
    rf"^(?:(?P<host>[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    rf"(?::[0-9]{{1,5}})?)/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
PLATFORM_LABELS = (names.LABEL_INSTANCE, names.LABEL_APP, names.LABEL_ROLE)


def normalize(reference: str) -> str:
    """The full name docker resolves `reference` to (`alpine` -> `docker.io/library/alpine:latest`)."""
    m = REFERENCE_RE.fullmatch(reference)
    if m is None or len(reference) > 255:
        raise PaasError(f"invalid image reference {reference[:80]!r}: use [registry/]name[:tag][@digest]")
    host, path = m.group("host"), m.group("path")
    if host is None or ("." not in host and ":" not in host and host != "localhost"):
        path = f"{host}/{path}" if host else path  # `user/name`: the first part is no registry
        host = "docker.io"
        if "/" not in path:
            path = f"library/{path}"
    suffix = f":{m.group('tag')}" if m.group("tag") else ("" if m.group("digest") else ":latest")
    if m.group("digest"):
        suffix += f"@{m.group('digest')}"
    return f"{host}/{path}{suffix}"


def listed(ctx: Context, reference: str) -> bool:
    """Whether the operator lets anyone deploy (and pull) this image."""
    full = normalize(reference)
    return any(full.startswith(prefix) for prefix in ctx.settings.image_sources)


def vet(ctx: Context, reference: str) -> str:
    """`reference` if the actor may deploy an app from it (else a one-line refusal)."""
    full = normalize(reference)
    if full.startswith("docker.io/paas/"):
        raise PaasError(f"{reference}: the platform's own images cannot be deployed as an app")
    if not listed(ctx, reference) and not access.is_admin(ctx):
        # A rule about the image, as dockerfile_rules' about a FROM line: not about the app.
        raise PaasError(
            f"{reference}: only an admin may deploy from an image whose registry the operator did not "
            "list in PAAS_IMAGE_SOURCES"
        )
    return reference


def ensure_local(ctx: Context, reference: str, log: BuildLog) -> Image:
    """The image, pulled first when it is missing and listed; a platform image is refused."""
    client = ctx.docker
    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        if not listed(ctx, reference):
            raise PaasError(
                f"{reference}: no such image on this server, and PAAS_IMAGE_SOURCES does not list "
                "its registry (nothing else is pulled)"
            ) from None
        log.step(f"Pulling {reference}")
        try:
            image = client.images.pull(reference)
        except docker.errors.DockerException as exc:
            raise PaasError(f"{reference}: pull failed: {exc}") from None
    except docker.errors.DockerException as exc:
        raise PaasError(f"{reference}: {exc}") from None
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    if any(label in labels for label in PLATFORM_LABELS) or any(t.startswith("paas/") for t in image.tags):
        raise PaasError(f"{reference}: the platform's own images cannot be deployed as an app")
    return image
