"""Builds run in containers from a stack image, never on the host.

A build container gets the pushed tree at /app, the buildpacks read-only at /buildpacks, a per-app
cache volume at /cache and the app's config as files in ENV_DIR (/env, a host folder, so config
never lands in the image). Its output streams to the pusher line by line.

A detected built-in buildpack builds in two containers (see `layers.py`): the dependency layer,
committed and reused while the manifests are unchanged, then the app on top of it. Overrides
(`BUILDPACK_URL`, `.buildpacks`) run the classic API in one container. A Dockerfile is built by
`dockerfile.py`. Every result is an image `paas/app-<app>:b<build id>-<instance>` whose entrypoint
is a launcher that runs a process type by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO

import docker
import yaml
from docker.models.containers import Container
from docker.types import Mount
from dulwich.repo import Repo

from paas.buildpacks import detect, dockerfile, layers, runtimes, slugignore, source, stack
from paas.buildpacks.isolation import build_hardening
from paas.buildpacks.procfile import parse_procfile
from paas.buildpacks.result import BuildFailed, BuildResult
from paas.core import names, timing, validation
from paas.core.container import log_config
from paas.core.context import Context
from paas.core.names import APP_PORT, LABEL_PORT, cache_volume, image_repository
from paas.core.output import BuildLog, split_lines
from paas.errors import PaasError

CA_PATH_IN_CONTAINER = "/etc/paas/ca.crt"
BUILD_ENV_IN_CONTAINER = "/etc/paas/build.env"
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


MAX_OUTPUT_BYTES = 256 * 1024


def image_port(client: docker.DockerClient, image: str) -> int:
    """The port an app image serves on, from the label the builder put on it."""
    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.DockerException:
        return APP_PORT
    value = labels.get(LABEL_PORT, "")
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) < 65536 else APP_PORT


def _buildpacks_dir() -> Path:
    return Path(str(resources.files("paas.buildpacks")))


def _dir_digest(*dirs: Path) -> str:
    """A hash of every file under the given folders: a changed buildpack invalidates its layers."""
    h = hashlib.sha256()
    for d in dirs:
        for p in sorted(d.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(d)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


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


def stream_lines(container: Container, log: BuildLog) -> None:
    """Forward a container's output to the build log as it comes: line by line, over-long lines
    cut (a build may print gigabytes without a newline)."""
    for line in split_lines(container.logs(stream=True, follow=True)):
        log.line(line)


def process_table(release_yaml: str | None, procfile: dict[str, str]) -> dict[str, str]:
    """The buildpack's default process types, overridden per type by the Procfile."""
    defaults: dict[str, str] = {}
    if release_yaml:
        try:
            release = yaml.safe_load(release_yaml) or {}
        except yaml.YAMLError:
            raise BuildFailed("build failed: bin/release printed invalid YAML") from None
        raw = release.get("default_process_types") if isinstance(release, dict) else None
        if isinstance(raw, dict):
            defaults = {str(k): str(v) for k, v in raw.items() if v is not None}
    for ptype in defaults:
        try:
            validation.process_type(ptype)
        except PaasError as exc:
            raise BuildFailed(f"build failed: bin/release: {exc}") from None
    return {**defaults, **procfile}


def read_build_output(out_dir: Path, name: str) -> str | None:
    """A result file the build left in its output folder. The build's own user controls that
    folder, so never follow a link, never read anything but a small regular file."""
    try:
        fd = os.open(out_dir / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        raise BuildFailed(f"build failed: the build left an unreadable {name} (a link?)") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise BuildFailed(f"build failed: {name} from the build is not a regular file")
        data = fh.read(MAX_OUTPUT_BYTES + 1)
    if len(data) > MAX_OUTPUT_BYTES:
        raise BuildFailed(f"build failed: {name} from the build is larger than {MAX_OUTPUT_BYTES} bytes")
    return data.decode("utf-8", "replace")


@dataclass
class BuildJob:
    """One build's scratch space on the host and the containers it runs."""

    ctx: Context
    app: str
    build_id: int
    config: dict[str, str]
    log: BuildLog
    build_env: dict[str, str] = field(default_factory=dict)
    extra_mounts: list[Mount] = field(default_factory=list)
    keep_containers: bool = False  # builder skip-cleanup: close() leaves them (stopped)

    def __post_init__(self) -> None:
        settings = self.ctx.settings
        self.client = self.ctx.docker
        self.work = Path(tempfile.mkdtemp(prefix=f"build-{self.app}-", dir=settings.data_dir))
        self.env_dir, self.out_dir = self.work / "env", self.work / "out"
        self.env_dir.mkdir()
        self.out_dir.mkdir()
        for key, value in self.config.items():
            if _ENV_KEY.match(key):  # a key is a file name here: never a path
                (self.env_dir / key).write_text(value)
        ca_env, ca_mounts = ca_environment(settings.build_ca_bundle)
        env = {"PAAS_BUILD_OUT": "/paas-out", "HOME": "/app", **ca_env, **self.build_env}
        env_file = self.work / "build.env"
        env_file.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()))
        # Scratch space is root's: uid 1000 inside the container is often a login user on the
        # host. The folder itself is 0700, so no host user reaches the config in it; inside, the
        # build (uid 1000) reads env files and may create, not list, its results.
        self.work.chmod(0o700)
        self.env_dir.chmod(0o755)
        for p in (env_file, *self.env_dir.iterdir()):
            p.chmod(0o644)
        self.out_dir.chmod(0o733)
        bp_dir = _buildpacks_dir()
        # Mounts (HostConfig only), not `volumes=`: those would be committed as VOLUMEs.
        self.mounts = [
            Mount("/cache", cache_volume(settings.instance_id, self.app), type="volume"),
            Mount("/buildpacks", str(bp_dir / "builtin"), type="bind", read_only=True),
            Mount("/paas", str(bp_dir / "launcher"), type="bind", read_only=True),
            Mount("/env", str(self.env_dir), type="bind", read_only=True),
            Mount("/paas-out", str(self.out_dir), type="bind"),
            Mount(BUILD_ENV_IN_CONTAINER, str(env_file), type="bind", read_only=True),
            *ca_mounts,
            *self.extra_mounts,
        ]
        self.containers: list[Container] = []

    def _fresh_name(self, role: str) -> str:
        """The container name of this build's `role`, freed of a leftover of an earlier try."""
        name = f"paas-build-{self.ctx.settings.instance_id}-{self.app}-{self.build_id}-{role}"
        try:
            self.client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
        return name

    def _labels(self) -> dict[str, str]:
        return {
            names.LABEL_APP: self.app,
            names.LABEL_BUILD: str(self.build_id),
            names.LABEL_ROLE: names.ROLE_BUILD,
            names.LABEL_INSTANCE: self.ctx.settings.instance_id,
        }

    def run(self, image: str, args: list[str], tar: IO[bytes], role: str) -> Container:
        """Run `paas-build <args>` in a new container with the tree in it; fail on non-zero exit."""
        settings = self.ctx.settings
        name = self._fresh_name(role)
        created = time.time()
        container = self.client.containers.create(
            image,
            command=["/paas/paas-build", *args],
            name=name,
            user="app",
            working_dir="/app",
            mounts=self.mounts,
            **build_hardening(self.client, settings, self.app),
            labels=self._labels(),
        )
        self.containers.append(container)
        timing.mark(self.app, f"build.{role}.create", created)
        with timing.phase(self.app, f"build.{role}.copy"), tar:
            container.put_archive("/", tar)
        ran = time.time()
        container.start()
        limit = self.ctx.settings.build_timeout
        timer = threading.Timer(limit, self._time_out, args=(container,))
        timer.daemon = True
        timer.start()
        try:
            stream_lines(container, self.log)
            status = container.wait().get("StatusCode", 1)
        finally:
            timer.cancel()
            timing.mark(self.app, f"build.{role}.run", ran)
        if self.timed_out:
            raise BuildFailed(f"build failed: it took longer than {limit:g} s (PAAS_BUILD_TIMEOUT)")
        if status != 0:
            raise BuildFailed(f"build failed: the buildpack exited with status {status}")
        return container

    timed_out = False

    def _time_out(self, container: Container) -> None:
        self.timed_out = True
        try:
            container.kill()
        except docker.errors.DockerException:
            pass

    def add_layer(self, image: str, tar: IO[bytes], role: str) -> Container:
        """The tree (with the buildpack's files in it) added to `image` in a container that is
        created and never started: the commit makes the layer, no build process runs (layers.py)."""
        name = self._fresh_name(role)
        created = time.time()
        container = self.client.containers.create(
            image,
            command=["web"],
            name=name,
            user="app",
            working_dir="/app",
            labels=self._labels(),
            log_config=log_config(),
        )
        self.containers.append(container)
        timing.mark(self.app, f"build.{role}.create", created)
        with timing.phase(self.app, f"build.{role}.copy"), tar:
            container.put_archive("/", tar)
        return container

    def output(self, name: str) -> str | None:
        return read_build_output(self.out_dir, name)

    def close(self) -> None:
        for c in self.containers:
            try:
                if self.keep_containers:
                    c.stop(timeout=1)
                else:
                    c.remove(force=True)
            except docker.errors.DockerException:
                pass
        shutil.rmtree(self.work, ignore_errors=True)


def _dependency_layer(
    job: BuildJob,
    tree: source.SourceTree,
    buildpack: str,
    stack_image: str,
    choice: runtimes.Choice,
    keep,
    per_push_keys: tuple[str, ...] = (),
) -> str:
    """The image with the app's dependencies installed: reused when its inputs are unchanged
    (config vars included, but not those every push changes: GIT_REV)."""
    paths = layers.dependency_paths(buildpack, tree)
    if paths == []:
        return stack_image
    bp_root = _buildpacks_dir()
    key_material = {
        "stack": job.client.images.get(stack_image).id,
        "buildpack": _dir_digest(bp_root / "builtin" / buildpack, bp_root / "launcher"),
        "files": tree.digest(paths) if paths is not layers.FULL_TREE else f"tree:{tree.tree_id}",
        "versions": choice.versions,
        "config": sorted((k, v) for k, v in job.config.items() if k not in per_push_keys),
        "slugignore": tree.read(".slugignore") or "",
    }
    key = hashlib.sha256(json.dumps(key_material, sort_keys=True).encode()).hexdigest()[:16]
    repository = image_repository(job.app)
    tag = f"deps-{key}-{job.ctx.settings.instance_id}"
    what = ", ".join(paths) if paths is not layers.FULL_TREE else "the source tree"
    try:
        job.client.images.get(f"{repository}:{tag}")
        job.log.step(f"Reusing the installed dependencies ({what} unchanged)")
        return f"{repository}:{tag}"
    except docker.errors.ImageNotFound:
        pass
    if paths is layers.FULL_TREE:
        job.log.step("Installing dependencies with the whole source in view (local paths or install scripts)")
        only = keep
    else:
        wanted = set(paths)

        def only(path: str) -> bool:
            return path in wanted and (keep is None or keep(path))

    deps_tar = tree.tar(only, with_git=False)
    container = job.run(stack_image, ["deps", f"builtin:/buildpacks/{buildpack}"], deps_tar, "deps")
    container.commit(repository=repository, tag=tag, changes=[f"LABEL {names.LABEL_ROLE}={names.ROLE_DEPS}"])
    return f"{repository}:{tag}"


def _log_plan(log: BuildLog, plan: detect.Plan, choice: runtimes.Choice) -> None:
    if plan.kind == "builtin":
        log.step(f"{plan.name} app detected")
    else:
        log.step("Using the buildpacks set for this app: " + ", ".join(b.describe() for b in plan.buildpacks))
    for runtime, version in choice.versions.items():
        label = "Python" if runtime == "python" else "Node.js"
        log.step(f"{label} {version}{'' if runtime == 'python' else '.x'} pinned: {choice.stack.name} stack")
    for note in choice.notes:
        log.detail(note)


def _custom_args(plan: detect.Plan) -> tuple[list[str], list[Mount]]:
    args, mounts = [], []
    for i, bp in enumerate(plan.buildpacks, 1):
        if bp.kind == "builtin":
            args.append(f"builtin:/buildpacks/{bp.value}")
        elif bp.kind == "git":
            args.append(f"git:{bp.value}")
        else:
            target = f"/buildpacks-custom/{i}"
            mounts.append(Mount(target, bp.value, type="bind", read_only=True))
            args.append(f"dir:{target}")
    return args, mounts


def _processes(release_yaml: str | None, procfile: dict[str, str]) -> dict[str, str]:
    processes = process_table(release_yaml, procfile)
    if not processes:
        raise BuildFailed("build failed: no process types: add a Procfile (e.g. 'web: gunicorn app:app')")
    return processes


def _proc_files(processes: dict[str, str]) -> dict[str, str]:
    """The process table as the launcher reads it: one file per type under /app/.paas/proc."""
    return {f".paas/proc/{t}": c for t, c in processes.items()}


def remove_kept_builds(ctx: Context, app: str) -> list[str]:
    """Containers of the app's earlier builds (kept by `builder skip-cleanup`, or a dead build's):
    a build, and `cleanup`, start without them. Returns their names."""
    labels = names.label_filter(ctx.settings.instance_id, app, names.ROLE_BUILD)
    removed = []
    for c in ctx.docker.containers.list(all=True, ignore_removed=True, filters={"label": labels}):
        try:
            c.remove(force=True)
            removed.append(c.name)
        except docker.errors.DockerException:
            pass
    return removed


def build(
    ctx: Context,
    app: str,
    build_id: int,
    repo: Repo,
    commit_sha: str,
    config: dict[str, str],
    log: BuildLog,
    options: detect.Options | None = None,
) -> BuildResult:
    """Build the commit into an app image (the image is the result; nothing runs yet)."""
    with timing.phase(app, "build"):
        return _build(ctx, app, build_id, repo, commit_sha, config, log, options or detect.Options())


def _build(
    ctx: Context,
    app: str,
    build_id: int,
    repo: Repo,
    commit_sha: str,
    config: dict[str, str],
    log: BuildLog,
    options: detect.Options,
) -> BuildResult:
    tree = source.SourceTree(repo, commit_sha)
    scratch = None
    try:
        if options.keep_git_dir:
            scratch = tempfile.TemporaryDirectory(prefix="paas-git-dir-")
            tree.git_dir = clone_git_dir(repo, commit_sha, Path(scratch.name), log)
        return _build_tree(ctx, app, build_id, tree, config, log, options)
    finally:
        if scratch is not None:
            scratch.cleanup()


def clone_git_dir(repo: Repo, commit_sha: str, scratch: Path, log: BuildLog) -> Path:
    """A clone of the app's repository at the commit, without its files: the `.git` that
    `git keep-git-dir` puts in the build (git status in the app sees the deployed commit)."""
    dest = scratch / "clone"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(scratch)}
    for args in (
        ["clone", "--quiet", "--no-checkout", "--no-hardlinks", str(repo.path), str(dest)],
        ["-C", str(dest), "reset", "--quiet", commit_sha],
    ):
        done = subprocess.run(["git", *args], env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise BuildFailed(f"build failed: keep-git-dir: git {args[0]}: {done.stderr.strip()[:200]}")
    log.step("Keeping the repository as .git (git keep-git-dir)")
    return dest / ".git"


def _build_tree(
    ctx: Context,
    app: str,
    build_id: int,
    tree: source.SourceTree,
    config: dict[str, str],
    log: BuildLog,
    options: detect.Options,
) -> BuildResult:
    settings = ctx.settings
    try:
        if options.build_dir:
            tree = tree.subdir(options.build_dir)
            log.step(f"Building {options.build_dir}/ as the app's root (builder build-dir)")
        procfile_text = tree.read("Procfile")
        procfile = parse_procfile(procfile_text) if procfile_text is not None else {}
        plan = detect.plan(settings, tree, config, options)
    except PaasError as exc:
        raise BuildFailed(str(exc)) from None
    client = ctx.docker
    remove_kept_builds(ctx, app)
    keep = slugignore.keeper(tree.read(".slugignore"))

    if plan.kind == "dockerfile":
        stack_image = stack.build_stack(settings, client, log.detail)
        return dockerfile.build(
            ctx, app, build_id, tree, procfile, keep, stack_image, log, options.base_images
        )

    try:
        choice = runtimes.choose(tree.read, plan.runtimes)
    except PaasError as exc:
        raise BuildFailed(str(exc)) from None
    _log_plan(log, plan, choice)
    if not stack.stack_exists(client, choice.stack):
        log.step(f"Building the {choice.stack.name} stack (once; about two minutes)")
    stack_image = stack.build_stack(settings, client, log.detail, choice.stack)

    build_env = {"STACK": choice.stack.name}
    if "python" in choice.versions:
        build_env["PAAS_PYTHON_VERSION"] = choice.versions["python"]
    if "node" in choice.versions:
        build_env["PAAS_NODE_VERSION"] = choice.versions["node"]
    custom_args, custom_mounts = _custom_args(plan) if plan.kind == "custom" else ([], [])
    job = BuildJob(ctx, app, build_id, config, log, build_env, custom_mounts, options.keep_containers)
    if options.keep_containers:
        log.detail("keeping this build's containers (builder skip-cleanup)")
    try:
        if plan.kind == "builtin":
            bp = plan.buildpacks[0].value
            with timing.phase(app, "build.deps"):
                base = _dependency_layer(job, tree, bp, stack_image, choice, keep, options.per_push_keys)
            copied = layers.copy_only_files(bp, tree) if base != stack_image else None
            if copied is not None:
                # Nothing runs: the process table is known now and goes in with the code, one copy.
                processes = _processes(layers.COPY_ONLY_RELEASE, procfile)
                with timing.phase(app, "build.tar"):
                    tar = tree.tar(keep, extra={**copied, **_proc_files(processes)})
                log.step("Adding the code to the installed dependencies (nothing to compile)")
                container = job.add_layer(base, tar, "app")
            else:
                with timing.phase(app, "build.tar"):
                    tar = tree.tar(keep)
                container = job.run(base, ["app", f"builtin:/buildpacks/{bp}"], tar, "app")
                processes = _processes(job.output("release.yml"), procfile)
                container.put_archive("/app", source.files_tar(_proc_files(processes)))
            name = plan.name
        else:
            container = job.run(stack_image, ["all", *custom_args], tree.tar(keep), "app")
            name = " + ".join((job.output("names") or "Custom").split("\n")).strip(" +")
            processes = _processes(job.output("release.yml"), procfile)
            container.put_archive("/app", source.files_tar(_proc_files(processes)))
        tag = f"b{build_id}-{settings.instance_id}"
        committed = time.time()
        container.commit(
            repository=image_repository(app),
            tag=tag,
            changes=[
                "USER app",
                "WORKDIR /app",
                "ENV HOME=/app",
                'ENTRYPOINT ["/start"]',
                'CMD ["web"]',
                f"LABEL {names.LABEL_ROLE}={names.ROLE_APP_IMAGE} {LABEL_PORT}={APP_PORT} "
                f"{names.LABEL_STACK}={choice.stack.name}",
            ],
        )
        timing.mark(app, "build.commit", committed)
        log.step(f"Discovering process types: {', '.join(sorted(processes))}")
        return BuildResult(
            image=f"{image_repository(app)}:{tag}",
            processes=processes,
            buildpack=name,
            port=APP_PORT,
            stack=choice.stack.name,
        )
    except docker.errors.DockerException as exc:
        raise BuildFailed(f"build failed: docker: {exc}") from None
    finally:
        # The build container and scratch folder go while the release starts: not a daemon
        # thread, so the process (a push's) still waits for it before it exits.
        threading.Thread(target=job.close, name=f"build-{build_id}-cleanup").start()
