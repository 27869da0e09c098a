"""The stack image every app image grows from, made locally from the Debian mirror.

No registry is assumed: `debootstrap --variant=minbase` into a folder, a few steps in a chroot
(the unprivileged `app` user, `/app`, `/cache`), then `docker import`. The tag carries a hash of
the recipe, so a changed recipe builds a new image and an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import docker

from paas.errors import PaasError
from paas.settings import Settings

STACK_REPOSITORY = "paas/stack"
APP_UID = 1000

POST_INSTALL = f"""set -e
groupadd --gid {APP_UID} app
useradd --uid {APP_UID} --gid {APP_UID} --home-dir /app --shell /bin/bash --no-create-home app
mkdir -p /app /cache /env /etc/paas
chown app:app /app /cache
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/* /var/log/*.log
"""


@dataclass(frozen=True)
class StackRecipe:
    """What goes into a stack image; its hash names the image."""

    name: str
    suite: str
    packages: tuple[str, ...]
    post_install: str = POST_INSTALL
    script: str | None = None  # debootstrap script to use for suites it does not know

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{self.name}-{self.digest()}"

    @property
    def image(self) -> str:
        return f"{STACK_REPOSITORY}:{self.tag}"


DEFAULT_STACK = StackRecipe(
    name="trixie",
    suite="trixie",
    packages=(
        "ca-certificates",
        "curl",
        "git",
        "procps",
        "python3",
        "python3-venv",
        "python3-dev",
        "python3-pip",
        "gcc",
        "libc6-dev",
        "make",
    ),
)


def stack_exists(client: docker.DockerClient, recipe: StackRecipe = DEFAULT_STACK) -> bool:
    try:
        client.images.get(recipe.image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _run_streaming(cmd: list[str], progress: Callable[[str], None]) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-15:]
        progress(line)
    if proc.wait() != 0:
        raise PaasError(f"{cmd[0]} failed (exit {proc.returncode}): " + " | ".join(tail[-3:]))


def _tar_chunks(root: Path) -> Iterator[bytes]:
    proc = subprocess.Popen(
        ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-c", "."],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    while chunk := proc.stdout.read(1 << 20):
        yield chunk
    if proc.wait() != 0:
        raise PaasError("tar of the stack tree failed")


def build_stack(
    settings: Settings,
    client: docker.DockerClient,
    progress: Callable[[str], None],
    recipe: StackRecipe = DEFAULT_STACK,
    force: bool = False,
) -> str:
    """Build the stack image unless it exists; return its reference."""
    if not force and stack_exists(client, recipe):
        return recipe.image
    if shutil.which("debootstrap") is None:
        raise PaasError("debootstrap is not installed (apt-get install debootstrap)")
    work = settings.stack_work_dir / recipe.tag
    if work.exists():
        shutil.rmtree(work)
    work.parent.mkdir(parents=True, exist_ok=True)
    progress(f"debootstrap {recipe.suite} (minbase) from {settings.debian_mirror}")
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(recipe.packages)}",
        recipe.suite,
        str(work),
        settings.debian_mirror,
    ]
    if recipe.script:
        cmd.append(recipe.script)
    try:
        _run_streaming(
            cmd,
            lambda ln: (
                progress("  " + ln) if ln.startswith(("I: Retr", "I: Conf", "I: Base", "E:", "W:")) else None
            ),
        )
        progress("configuring the app user and folders")
        (work / "tmp" / "paas-post.sh").write_text(recipe.post_install)
        _run_streaming(["chroot", str(work), "/bin/sh", "/tmp/paas-post.sh"], progress)
        (work / "tmp" / "paas-post.sh").unlink(missing_ok=True)
        progress(f"importing into docker as {recipe.image}")
        client.api.import_image(
            src=_tar_chunks(work),
            repository=STACK_REPOSITORY,
            tag=recipe.tag,
            changes=[
                "ENV LANG=C.UTF-8",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "WORKDIR /app",
                'CMD ["/bin/bash"]',
            ],
            stream_src=True,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not stack_exists(client, recipe):
        raise PaasError(f"docker import did not produce {recipe.image}")
    progress(f"stack {recipe.image} built")
    return recipe.image
