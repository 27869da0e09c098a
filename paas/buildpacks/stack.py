"""The stack images every app image grows from, made locally from the Debian mirror.

No registry is assumed: `debootstrap --variant=minbase` into a folder, a few steps in a chroot
(the unprivileged `app` user, `/app`, `/cache`, a check that the promised runtimes are there),
then `docker import`. The tag carries a hash of the recipe, so a changed recipe builds a new image
and an unchanged one is reused. Two stacks: Debian 13 (the default) and Debian testing, for
runtimes newer than Debian 13 ships; a pinned runtime picks between them (see `runtimes.py`).
Stable alias tags (`paas/stack:latest`, `paas/stack:<name>`) let Dockerfiles say
`FROM paas/stack:latest` without knowing the hash.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import docker

from paas.core import children
from paas.core.names import APP_UID
from paas.errors import PaasError
from paas.settings import Settings

STACK_REPOSITORY = "paas/stack"
LATEST_ALIAS = f"{STACK_REPOSITORY}:latest"
DEBOOTSTRAP_SCRIPTS = Path("/usr/share/debootstrap/scripts")

# debootstrap's own resolver cannot install npm (hundreds of node-* packages with alternatives):
# apt in the chroot does. No service may start while packages are configured.
APT_INSTALL = """set -e
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
export DEBIAN_FRONTEND=noninteractive
apt-get -o Acquire::Check-Valid-Until=false -qq update
apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-unsafe-io {packages} >/dev/null
rm -f /usr/sbin/policy-rc.d
"""

POST_INSTALL = f"""set -e
groupadd --gid {APP_UID} app
useradd --uid {APP_UID} --gid {APP_UID} --home-dir /app --shell /bin/bash --no-create-home app
mkdir -p /app /cache /env /etc/paas
chown app:app /app /cache
# The modes a Debian system has, whatever umask the process that built this tree ran under: the
# build and the processes run as the app user and read /etc/paas, /opt/paas and /env.
chmod 0755 / /app /cache /env /etc/paas
[ ! -d /opt/paas ] || chmod -R u+rwX,go+rX,go-w /opt/paas
# nginx (static sites) runs as the app user inside app containers: no system service, no logs here.
rm -f /etc/nginx/sites-enabled/default
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/* /var/log/*.log
"""

COMMON_PACKAGES = ("ca-certificates", "curl", "git", "procps", "gcc", "libc6-dev", "make")
COMMON_APT_PACKAGES = ("nginx-light", "nodejs", "npm")


@dataclass(frozen=True)
class StackRecipe:
    """What goes into a stack image; its hash names the image.

    `runtimes` promises interpreter versions (python: minor versions, node: major versions);
    building the stack checks each promise, so pin resolution never trusts a stale list.
    """

    name: str
    suite: str
    packages: tuple[str, ...]  # installed by debootstrap
    apt_packages: tuple[str, ...] = ()  # installed with apt in the chroot afterwards
    runtimes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    post_install: str = POST_INSTALL
    script: str | None = None  # debootstrap script to use for suites it does not know (e.g. "sid")

    def digest(self) -> str:
        """Names the image: every field and the exact script run in the chroot."""
        material = json.dumps(asdict(self), sort_keys=True) + self.setup_script()
        return hashlib.sha256(material.encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{self.name}-{self.digest()}"

    @property
    def image(self) -> str:
        return f"{STACK_REPOSITORY}:{self.tag}"

    def offers(self, runtime: str) -> tuple[str, ...]:
        return dict(self.runtimes).get(runtime, ())

    def setup_script(self) -> str:
        """What runs in the chroot after debootstrap: extra packages, runtime checks, the app user."""
        apt = APT_INSTALL.format(packages=" ".join(self.apt_packages)) if self.apt_packages else ""
        return "umask 022\n" + apt + self.runtime_checks() + self.pip_templates() + self.post_install

    def pip_templates(self) -> str:
        """pip, unpacked once per Python version: a build copies it into a `--without-pip` venv
        in a few milliseconds instead of running ensurepip (about 1.7 s) on every dependency change."""
        lines = []
        for v in self.offers("python"):
            lines += [
                f"python{v} -m venv /tmp/paas-venv",
                f"mkdir -p /opt/paas/pip/python{v}",
                f"cp -a /tmp/paas-venv/lib/python{v}/site-packages/pip* /opt/paas/pip/python{v}/",
                "rm -rf /tmp/paas-venv",
            ]
        return "\n".join(lines) + "\n"

    def runtime_checks(self) -> str:
        """Shell lines run in the chroot: fail the stack build if a promised runtime is missing."""
        lines = []
        for version in self.offers("python"):
            lines.append(f"python{version} -c 'import ensurepip, venv'")
        for major in self.offers("node"):
            lines.append(f'node --version | grep -q "^v{major}\\." || {{ node --version; exit 1; }}')
            lines.append("npm --version >/dev/null")
        return "\n".join(lines) + "\n"


DEFAULT_STACK = StackRecipe(
    name="trixie",
    suite="trixie",
    packages=(*COMMON_PACKAGES, "python3", "python3-venv", "python3-dev"),
    apt_packages=COMMON_APT_PACKAGES,
    runtimes=(("python", ("3.13",)), ("node", ("20",))),
)

TESTING_STACK = StackRecipe(
    name="forky",
    suite="forky",
    packages=(
        *COMMON_PACKAGES,
        "python3",
        "python3.14",
        "python3.14-venv",
        "python3.14-dev",
        "python3.15",
        "python3.15-venv",
        "python3.15-dev",
    ),
    apt_packages=COMMON_APT_PACKAGES,
    runtimes=(("python", ("3.14", "3.15")), ("node", ("24",))),
    script="sid",
)

# In order of preference: a pin that the default stack satisfies never builds the second one.
STACKS: tuple[StackRecipe, ...] = (DEFAULT_STACK, TESTING_STACK)


def stack_named(name: str) -> StackRecipe:
    for recipe in STACKS:
        if recipe.name == name:
            return recipe
    raise PaasError(f"no stack named {name!r}; stacks: {', '.join(r.name for r in STACKS)}")


def stack_exists(client: docker.DockerClient, recipe: StackRecipe = DEFAULT_STACK) -> bool:
    try:
        client.images.get(recipe.image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _run_streaming(cmd: list[str], progress: Callable[[str], None]) -> None:
    proc = children.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-15:]
        progress(line)
    if proc.wait() != 0:
        raise PaasError(f"{cmd[0]} failed (exit {proc.returncode}): " + " | ".join(tail[-3:]))


def _tar_chunks(root: Path) -> Iterator[bytes]:
    proc = children.popen(
        ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-c", "."],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    while chunk := proc.stdout.read(1 << 20):
        yield chunk
    if proc.wait() != 0:
        raise PaasError("tar of the stack tree failed")


def ensure_aliases(client: docker.DockerClient, recipe: StackRecipe) -> None:
    """Point `paas/stack:<name>` (and `:latest` for the default stack) at the recipe's image."""
    image = client.images.get(recipe.image)
    wanted = [recipe.name] + (["latest"] if recipe == DEFAULT_STACK else [])
    for tag in wanted:
        if f"{STACK_REPOSITORY}:{tag}" not in image.tags:
            image.tag(STACK_REPOSITORY, tag)


def build_stack(
    settings: Settings,
    client: docker.DockerClient,
    progress: Callable[[str], None],
    recipe: StackRecipe = DEFAULT_STACK,
    force: bool = False,
) -> str:
    """Build the stack image unless it exists; return its reference.

    A file lock on the machine serialises builders: two pushes (or two PaaS instances on one
    engine) that both need a new stack build it once.
    """
    if not force and stack_exists(client, recipe):
        ensure_aliases(client, recipe)
        return recipe.image
    settings.engine_locks_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(settings.engine_locks_dir / f"stack-{recipe.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and stack_exists(client, recipe):
            ensure_aliases(client, recipe)
            return recipe.image
        return _build_locked(settings, client, progress, recipe)


def _build_locked(
    settings: Settings, client: docker.DockerClient, progress: Callable[[str], None], recipe: StackRecipe
) -> str:
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
        cmd.append(str(DEBOOTSTRAP_SCRIPTS / recipe.script))
    try:
        _run_streaming(
            cmd,
            lambda ln: progress("  " + ln) if ln.startswith(("I: Retr", "I: Base", "E:", "W:")) else None,
        )
        progress(f"apt-get install {' '.join(recipe.apt_packages)}; the app user; checking the runtimes")
        (work / "tmp" / "paas-post.sh").write_text(recipe.setup_script())
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
                f"LABEL paas.stack={recipe.name}",
                "WORKDIR /app",
                'CMD ["/bin/bash"]',
            ],
            stream_src=True,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not stack_exists(client, recipe):
        raise PaasError(f"docker import did not produce {recipe.image}")
    ensure_aliases(client, recipe)
    progress(f"stack {recipe.image} built")
    return recipe.image
