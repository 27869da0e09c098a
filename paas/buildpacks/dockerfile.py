"""Apps with a Dockerfile (and no buildpack marker): `docker build` through the SDK.

No registry is used, and a build may read no other tenant's image: `dockerfile_rules` lets `FROM` and
`COPY --from` name only the stack images (`paas/stack:latest`, `paas/stack:<name>`, or the build arg
`PAAS_STACK_IMAGE` via `ARG PAAS_STACK_IMAGE` / `FROM ${PAAS_STACK_IMAGE}`) or earlier stages, and
refuses `ADD <url>`, before dockerd sees the file. The built image gets a thin layer on top: a
launcher that runs process types by name (the Procfile's commands, else the image's own ENTRYPOINT +
CMD for web), the port from `EXPOSE`, and uid 1000 unless the image's user is certainly not root.
"""

from __future__ import annotations

import io
import shlex
import tarfile
from collections.abc import Callable

import docker
from docker.models.containers import Container
from docker.utils import parse_bytes

from paas.buildpacks import dockerfile_rules, source, stack
from paas.buildpacks.isolation import build_hardening
from paas.buildpacks.result import BuildFailed, BuildResult
from paas.core import names
from paas.core.container import log_config
from paas.core.context import Context
from paas.core.names import APP_PORT, APP_UID, LABEL_PORT, image_repository
from paas.core.output import BuildLog

STACK_ARG = "PAAS_STACK_IMAGE"
LAUNCHER = "/.paas/start"
PASSWD_LIMIT = 1 << 20
DOCKERFILE_LIMIT = 256 << 10  # checking is linear-ish but not free; no real Dockerfile comes near


def stack_references(stack_image: str) -> set[str]:
    """Every name a Dockerfile may read: the stack images by hash and by alias."""
    refs = {stack_image, stack.LATEST_ALIAS}
    for recipe in stack.STACKS:
        refs |= {recipe.image, f"{stack.STACK_REPOSITORY}:{recipe.name}"}
    return refs


def exposed_port(ports: dict | None, log: BuildLog) -> int:
    """The TCP port from EXPOSE (the lowest if several); the default without EXPOSE."""
    tcp = sorted(int(p.split("/")[0]) for p in (ports or {}) if p.endswith("/tcp") or "/" not in p)
    if not tcp:
        log.detail(f"no EXPOSE: the app must listen on $PORT ({APP_PORT})")
        return APP_PORT
    if len(tcp) > 1:
        log.detail(f"several ports exposed ({', '.join(map(str, tcp))}): routing to {tcp[0]}")
    return tcp[0]


def process_commands(procfile: dict[str, str], entrypoint: list[str], cmd: list[str]) -> dict[str, str]:
    """Shell commands per process type. A Procfile command becomes the arguments of the image's
    ENTRYPOINT (as `docker run IMAGE CMD` would); web defaults to ENTRYPOINT + CMD."""
    processes = {}
    for ptype, command in procfile.items():
        processes[ptype] = f"exec {shlex.join(entrypoint)} {command}" if entrypoint else command
    if "web" not in processes and (entrypoint or cmd):
        processes["web"] = "exec " + shlex.join([*entrypoint, *cmd])
    return processes


def effective_uid(user: str, passwd: str | None) -> int | None:
    """The uid a container of an image with `USER user` runs as, as runc resolves it: a number is
    a uid, a name is looked up in the image's /etc/passwd (lines stripped, first match wins).
    None when it cannot be told for sure (no passwd, no entry, an odd uid field, or two entries
    for the name that disagree): the caller treats that as root."""
    name = user.split(":", 1)[0]
    if name == "":
        return 0
    if name.isascii() and name.isdigit():
        return int(name)
    if passwd is None:
        return None
    uids = set()
    for line in passwd.splitlines():
        fields = line.strip().split(":")
        if len(fields) >= 3 and fields[0] == name:
            uids.add(fields[2])
    if len(uids) != 1:
        return None
    [uid] = uids
    return int(uid) if uid.isascii() and uid.isdigit() else None


def _read_passwd(container: Container) -> str | None:
    """The image's /etc/passwd as a regular file, or None (missing, a link, too large)."""
    try:
        stream, stat = container.get_archive("/etc/passwd")
    except docker.errors.NotFound:
        return None
    if stat.get("linkTarget") or stat.get("size", 0) > PASSWD_LIMIT:
        return None
    try:
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            if member is None or not member.isreg():
                return None
            f = tar.extractfile(member)
            return f.read(PASSWD_LIMIT).decode("utf-8", errors="replace") if f else None
    except tarfile.TarError:
        return None


def build(
    ctx: Context,
    app: str,
    build_id: int,
    tree: source.SourceTree,
    procfile: dict[str, str],
    keep: Callable[[str], bool] | None,
    stack_image: str,
    log: BuildLog,
    base_images: tuple[str, ...] = (),
) -> BuildResult:
    """`base_images`: images the app may also build FROM (its git:from-image source, vetted by
    the service that passes it)."""
    client = ctx.docker
    settings = ctx.settings
    log.step("Dockerfile app detected")
    text = tree.read("Dockerfile", limit=DOCKERFILE_LIMIT)
    if text is None:
        raise BuildFailed(f"Dockerfile: not a regular file, or larger than {DOCKERFILE_LIMIT >> 10} KiB")
    build_args = {STACK_ARG: stack_image}
    allowed = stack_references(stack_image) | {dockerfile_rules.normalize(i) for i in base_images}
    checked = dockerfile_rules.check(text, build_args, allowed, stack.LATEST_ALIAS)
    for image in checked.images:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            raise BuildFailed(
                f"Dockerfile: {image}: no such image on this server (no registry is used); "
                f"use FROM {stack.LATEST_ALIAS}"
            ) from None
        except docker.errors.APIError as exc:
            raise BuildFailed(f"Dockerfile: {image}: {exc.explanation or exc}") from None
    log.step("Building the image with docker build")
    image_id = None
    memory = parse_bytes(settings.build_memory)
    build_net = build_hardening(client, settings, app)["network"]
    with tree.tar(keep, launcher=False, prefix="") as context:
        try:
            for chunk in client.api.build(
                fileobj=context,
                custom_context=True,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                buildargs=build_args,
                labels={names.LABEL_APP: app, names.LABEL_INSTANCE: settings.instance_id},
                # RUN steps: the build's memory ceiling (no swap) and the app's build network.
                # The classic builder's API takes no capability or pids options.
                container_limits={"memory": memory, "memswap": memory},
                network_mode=build_net,
            ):
                if "stream" in chunk:
                    for line in chunk["stream"].splitlines():
                        if line.strip():
                            log.detail(line)
                if "error" in chunk:
                    detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                    raise BuildFailed(f"build failed: docker build: {detail.strip()}")
                if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
        except docker.errors.DockerException as exc:
            raise BuildFailed(f"build failed: docker build: {exc}") from None
    if image_id is None:
        raise BuildFailed("build failed: docker build produced no image")

    built = client.images.get(image_id)
    config = built.attrs.get("Config") or {}
    port = exposed_port(config.get("ExposedPorts"), log)
    processes = process_commands(procfile, config.get("Entrypoint") or [], config.get("Cmd") or [])
    if not processes:
        raise BuildFailed("build failed: the image has no CMD or ENTRYPOINT and there is no Procfile")
    changes = [
        f'ENTRYPOINT ["{LAUNCHER}"]',
        'CMD ["web"]',
        f"LABEL {names.LABEL_ROLE}={names.ROLE_APP_IMAGE} {LABEL_PORT}={port}",
    ]
    files = {f".paas/proc/{t}": c for t, c in processes.items()}
    launcher = source.launcher_bytes("docker-start")
    container = client.containers.create(
        image_id, entrypoint=[LAUNCHER], command=["web"], log_config=log_config()
    )  # created, never started: the commit makes the layer
    try:
        user = config.get("User") or ""
        uid = effective_uid(user, _read_passwd(container))
        if uid is None or uid == 0:
            changes.append(f"USER {APP_UID}:{APP_UID}")
            why = "runs as root" if uid == 0 else f"runs as {user!r}, which is not a known uid"
            log.detail(f"the image {why}: its processes run as uid {APP_UID} instead")
        container.put_archive("/", source.files_tar(files, uid=0))
        container.put_archive("/", source.files_tar({".paas/start": launcher}, uid=0, mode=0o755))
        tag = f"b{build_id}-{settings.instance_id}"
        container.commit(repository=image_repository(app), tag=tag, changes=changes)
    except docker.errors.DockerException as exc:
        raise BuildFailed(f"build failed: docker: {exc}") from None
    finally:
        container.remove(force=True)
    log.step(f"Discovering process types: {', '.join(sorted(processes))} (port {port})")
    return BuildResult(
        image=f"{image_repository(app)}:{tag}", processes=processes, buildpack="Dockerfile", port=port
    )
