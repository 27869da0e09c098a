"""Images of backing services (Postgres, Redis), built locally on the stack: no registry.

A recipe is Debian packages installed with apt `FROM` the default stack image (which already has
the Debian mirror configured) plus a few files (an entrypoint); the tag is a hash of the recipe
and of the stack image it grows from, so an unchanged recipe is built once and reused, and a
changed one (or a new stack) builds a new image. A file lock serialises builders.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass

import docker

from paas.buildpacks import stack
from paas.core import names
from paas.errors import PaasError
from paas.settings import Settings

APT = (
    "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d"
    " && export DEBIAN_FRONTEND=noninteractive"
    " && apt-get -o Acquire::Check-Valid-Until=false -qq update"
    " && apt-get install -y -qq --no-install-recommends {packages} >/dev/null"
    " && rm -f /usr/sbin/policy-rc.d && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin"
)


@dataclass(frozen=True)
class ServiceImageRecipe:
    """What goes into one kind's image. `before` runs before apt (e.g. no default cluster),
    `after` after it (folders owned by the service's own user); `files` are (path, mode, text)."""

    kind: str
    packages: tuple[str, ...]
    before: str = "true"
    after: str = "true"
    files: tuple[tuple[str, int, str], ...] = ()
    user: str = "root"  # the image's USER: the service's own user, never root at run time
    entrypoint: tuple[str, ...] = ()

    def dockerfile(self, base: str) -> str:
        lines = [f"FROM {base}", f"RUN {self.before} && {APT.format(packages=' '.join(self.packages))}"]
        for path, _mode, _text in self.files:
            lines.append(f"COPY files{path} {path}")
        lines.append(f"RUN {self.after}")
        lines.append(f"USER {self.user}")
        if self.entrypoint:
            lines.append(f"ENTRYPOINT {json.dumps(list(self.entrypoint))}")
        return "\n".join(lines) + "\n"

    def digest(self, base_id: str) -> str:
        material = json.dumps([self.dockerfile("BASE"), self.files, base_id], sort_keys=True)
        return hashlib.sha256(material.encode()).hexdigest()[:12]

    def context(self, base: str) -> io.BytesIO:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            entries = [("Dockerfile", 0o644, self.dockerfile(base))]
            entries += [(f"files{p}", mode, text) for p, mode, text in self.files]
            for name, mode, text in entries:
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        return buf


def _exists(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def image_for(settings: Settings, client: docker.DockerClient, recipe: ServiceImageRecipe) -> str:
    """The image reference the recipe has today (built or not): its hash covers the stack's id."""
    base = client.images.get(stack.DEFAULT_STACK.image)
    return names.service_image(recipe.kind, recipe.digest(base.id))


def ensure_image(
    settings: Settings,
    client: docker.DockerClient,
    recipe: ServiceImageRecipe,
    progress: Callable[[str], None],
) -> str:
    """The recipe's image, built on first use (the stack too, if it is missing)."""
    stack.build_stack(settings, client, progress)
    image = image_for(settings, client, recipe)
    if _exists(client, image):
        return image
    settings.engine_locks_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(settings.engine_locks_dir / f"service-image-{recipe.kind}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _exists(client, image):
            return image
        progress(f"Building the {recipe.kind} image from Debian packages ({' '.join(recipe.packages)})")
        tail: list[str] = []
        try:
            for chunk in client.api.build(
                fileobj=recipe.context(stack.DEFAULT_STACK.image),
                custom_context=True,
                tag=image,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                labels={names.LABEL_INSTANCE: "shared", names.LABEL_SERVICE_KIND: recipe.kind},
            ):
                for line in (chunk.get("stream") or "").splitlines():
                    if line.strip():
                        tail = (tail + [line.strip()])[-5:]
                if "error" in chunk:
                    detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                    raise PaasError(f"building the {recipe.kind} image failed: {detail.strip()}")
        except docker.errors.DockerException as exc:
            raise PaasError(f"building the {recipe.kind} image failed: {exc}") from None
        if not _exists(client, image):
            raise PaasError(f"building the {recipe.kind} image failed: " + " | ".join(tail[-3:]))
        return image
