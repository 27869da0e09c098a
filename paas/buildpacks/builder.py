"""Builds run in a container from the stack image, never on the host.

The container gets the pushed tree at /app, the buildpacks read-only at /buildpacks, a per-app
cache volume at /cache and the app's config as files in ENV_DIR (/env, a host folder, so config
never lands in the image). Its output streams to the pusher line by line; the result is
committed as `paas/app-<app>:b<build id>-<instance>`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import docker
import yaml
from docker.types import Mount
from dulwich.repo import Repo

from paas.buildpacks import source, stack
from paas.buildpacks.procfile import parse_procfile
from paas.errors import PaasError
from paas.services.context import Context
from paas.services.output import BuildLog

CA_PATH_IN_CONTAINER = "/etc/paas/ca.crt"
BUILTIN_ORDER = ("python",)


class BuildFailed(PaasError):
    """The build did not produce an image; nothing that runs was changed."""


@dataclass(frozen=True)
class BuildResult:
    image: str
    processes: dict[str, str]
    buildpack: str


def image_repository(app: str) -> str:
    return f"paas/app-{app}"


def cache_volume(instance: str, app: str) -> str:
    return f"paas-cache-{instance}-{app}"


def _buildpacks_dir() -> Path:
    return Path(str(resources.files("paas.buildpacks")))


def ca_environment(settings_ca: str | None) -> tuple[dict[str, str], list[Mount]]:
    """Env vars and mounts that make pip, npm, curl and git trust the operator's CA bundle."""
    if not settings_ca:
        return {}, []
    if not Path(settings_ca).is_file():
        raise PaasError(f"PAAS_BUILD_CA_BUNDLE={settings_ca} is not a readable file")
    env = {
        k: CA_PATH_IN_CONTAINER
        for k in (
            "PIP_CERT",
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
            "GIT_SSL_CAINFO",
            "CURL_CA_BUNDLE",
        )
    }
    return env, [Mount(CA_PATH_IN_CONTAINER, settings_ca, type="bind", read_only=True)]


def _stream_lines(container, log: BuildLog) -> None:
    pending = b""
    for chunk in container.logs(stream=True, follow=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for ln in lines:
            log.line(ln.decode("utf-8", errors="replace").rstrip("\r"))
    if pending:
        log.line(pending.decode("utf-8", errors="replace"))


def build(
    ctx: Context,
    app: str,
    build_id: int,
    repo: Repo,
    commit_sha: str,
    config: dict[str, str],
    log: BuildLog,
) -> BuildResult:
    client = ctx.docker
    settings = ctx.settings
    procfile_text = source.read_file(repo, commit_sha, "Procfile")
    procfile = parse_procfile(procfile_text) if procfile_text is not None else {}

    stack_image = stack.build_stack(settings, client, log.detail)
    ca_env, ca_mounts = ca_environment(settings.build_ca_bundle)

    work = Path(tempfile.mkdtemp(prefix=f"build-{app}-", dir=settings.data_dir))
    env_dir, out_dir = work / "env", work / "out"
    env_dir.mkdir()
    out_dir.mkdir()
    for key, value in config.items():
        (env_dir / key).write_text(value)
    for p in (work, env_dir, out_dir, *env_dir.iterdir()):
        shutil.chown(p, stack.APP_UID, stack.APP_UID)
    work.chmod(0o700)

    bp_dir = _buildpacks_dir()
    # Mounts (HostConfig only), not `volumes=`: those would be committed as VOLUMEs.
    mounts = [
        Mount("/cache", cache_volume(settings.instance_id, app), type="volume"),
        Mount("/buildpacks", str(bp_dir / "builtin"), type="bind", read_only=True),
        Mount("/paas", str(bp_dir / "launcher"), type="bind", read_only=True),
        Mount("/env", str(env_dir), type="bind", read_only=True),
        Mount("/paas-out", str(out_dir), type="bind"),
        *ca_mounts,
    ]
    environment = {"PAAS_BUILD_OUT": "/paas-out", "HOME": "/app", "STACK": "trixie", **ca_env}
    container = None
    try:
        try:
            client.containers.get(f"paas-build-{settings.instance_id}-{app}-{build_id}").remove(force=True)
        except docker.errors.NotFound:
            pass
        container = client.containers.create(
            stack_image,
            command=["/paas/paas-build", *(f"/buildpacks/{b}" for b in BUILTIN_ORDER)],
            name=f"paas-build-{settings.instance_id}-{app}-{build_id}",
            user="app",
            working_dir="/app",
            environment=environment,
            mounts=mounts,
            labels={
                "paas.app": app,
                "paas.build": str(build_id),
                "paas.role": "build",
                "paas.instance": settings.instance_id,
            },
        )
        with source.source_tar(repo, commit_sha) as tar:
            container.put_archive("/", tar)
        container.start()
        _stream_lines(container, log)
        status = container.wait().get("StatusCode", 1)
        if status != 0:
            raise BuildFailed(f"build failed: the buildpack exited with status {status}")
        buildpack = (
            (out_dir / "buildpack").read_text().strip() if (out_dir / "buildpack").exists() else "unknown"
        )
        defaults: dict[str, str] = {}
        release_file = out_dir / "release.yml"
        if release_file.exists():
            try:
                release = yaml.safe_load(release_file.read_text()) or {}
            except yaml.YAMLError:
                raise BuildFailed("build failed: bin/release printed invalid YAML") from None
            defaults = dict(release.get("default_process_types") or {})
        processes = {**{str(k): str(v) for k, v in defaults.items()}, **procfile}
        if not processes:
            raise BuildFailed("build failed: no process types: add a Procfile (e.g. 'web: gunicorn app:app')")
        container.put_archive("/app", source.files_tar({f".paas/proc/{t}": c for t, c in processes.items()}))
        tag = f"b{build_id}-{settings.instance_id}"
        container.commit(
            repository=image_repository(app),
            tag=tag,
            changes=[
                "USER app",
                "WORKDIR /app",
                "ENV HOME=/app",
                'ENTRYPOINT ["/start"]',
                'CMD ["web"]',
            ],
        )
        log.step(f"Discovering process types: {', '.join(sorted(processes))}")
        return BuildResult(image=f"{image_repository(app)}:{tag}", processes=processes, buildpack=buildpack)
    except docker.errors.DockerException as exc:
        raise BuildFailed(f"build failed: docker: {exc}") from None
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.DockerException:
                pass
        shutil.rmtree(work, ignore_errors=True)
