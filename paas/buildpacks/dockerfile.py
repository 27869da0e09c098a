"""Apps with a Dockerfile (and no buildpack marker): `docker build` through the SDK.

No registry is used, so every `FROM` must name an image this server has: the stack images are
tagged `paas/stack:latest` (and `paas/stack:<name>`), and the build arg `PAAS_STACK_IMAGE` holds the
default stack's exact reference (`ARG PAAS_STACK_IMAGE` / `FROM ${PAAS_STACK_IMAGE}`). The built image
gets a thin layer on top: a launcher that runs process types by name (the Procfile's commands,
else the image's own ENTRYPOINT + CMD for web), the port from `EXPOSE`, and a non-root user.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

import docker

from paas.buildpacks import source
from paas.buildpacks.result import BuildFailed, BuildResult
from paas.core import names
from paas.core.context import Context
from paas.core.names import APP_PORT, APP_UID, LABEL_PORT, image_repository
from paas.core.output import BuildLog

STACK_ARG = "PAAS_STACK_IMAGE"
LAUNCHER = "/.paas/start"
_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?\s*$", re.IGNORECASE)
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def base_images(dockerfile: str, build_args: dict[str, str]) -> list[str]:
    """The images the Dockerfile's FROM lines name, with ARGs substituted; stages excluded."""
    args = dict(build_args)
    stages: set[str] = set()
    images: list[str] = []
    lines = dockerfile.replace("\\\n", " ").splitlines()
    seen_from = False
    for line in lines:
        m = _ARG.match(line)
        if m and not seen_from:
            args.setdefault(m.group(1), m.group(2) or "")
            continue
        m = _FROM.match(line)
        if not m:
            continue
        seen_from = True

        def sub(v: re.Match) -> str:
            name = v.group(1) or v.group(3)
            return args.get(name) or (v.group(2) or "")

        image = _VAR.sub(sub, m.group(1))
        if image.lower() != "scratch" and image not in stages:
            images.append(image)
        if m.group(2):
            stages.add(m.group(2))
    return images


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


def _is_root(user: str) -> bool:
    return user.split(":")[0] in ("", "root", "0")


def build(
    ctx: Context,
    app: str,
    build_id: int,
    tree: source.SourceTree,
    procfile: dict[str, str],
    keep: Callable[[str], bool] | None,
    stack_image: str,
    log: BuildLog,
) -> BuildResult:
    client = ctx.docker
    settings = ctx.settings
    log.step("Dockerfile app detected")
    text = tree.read("Dockerfile") or ""
    build_args = {STACK_ARG: stack_image}
    for image in base_images(text, build_args):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            raise BuildFailed(
                f"Dockerfile: FROM {image}: no such image on this server (no registry is used); "
                f"use FROM paas/stack:latest"
            ) from None
        except docker.errors.APIError as exc:
            raise BuildFailed(f"Dockerfile: FROM {image}: {exc.explanation or exc}") from None
    log.step("Building the image with docker build")
    image_id = None
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
    user = config.get("User") or ""
    changes = [
        f'ENTRYPOINT ["{LAUNCHER}"]',
        'CMD ["web"]',
        f"LABEL {names.LABEL_ROLE}={names.ROLE_APP_IMAGE} {LABEL_PORT}={port}",
    ]
    if _is_root(user):
        changes.append(f"USER {APP_UID}:{APP_UID}")
        log.detail(f"the image runs as root: its processes run as uid {APP_UID} instead")
    files = {f".paas/proc/{t}": c for t, c in processes.items()}
    launcher = source.launcher_bytes("docker-start")
    container = client.containers.create(image_id, entrypoint=[LAUNCHER], command=["web"])
    try:
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
