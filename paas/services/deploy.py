"""Build, release, deploy: the path every change to what runs goes through.

A release is immutable (build + config snapshot + formation). Deploying one starts its
containers, waits until each serves, switches the router, and only then retires the old ones;
any failure stops the new containers and leaves the running release untouched.
"""

from __future__ import annotations

import docker
from dulwich.repo import Repo

from paas.buildpacks import app_json, builder, release_phase
from paas.core import names
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.core.validation import BRANCHES_THAT_DEPLOY
from paas.errors import PaasError
from paas.scheduler import docker_local as sched
from paas.scheduler import health
from paas.services import apps as apps_service
from paas.services import checks as checks_service
from paas.services import gc
from paas.store import App, Build, Release


class DeployFailed(PaasError):
    """The new release did not come up; the previous one keeps serving."""


def default_formation(processes: dict[str, str], stored: dict[str, int]) -> dict[str, int]:
    """Stored scale for known types; new types get web=1 and 0 for the rest (as Heroku)."""
    return {t: stored.get(t, 1 if t == "web" else 0) for t in sorted(processes) if t != "release"}


def hostnames(ctx: Context, app: str) -> list[str]:
    """The default `<app>.<domain>` plus the app's custom domains."""
    record = ctx.store.get_app(app)
    custom = ctx.store.list_domains(record.id) if record else []
    return [f"{app}.{ctx.settings.domain}", *custom]


def check_push_ref(ref: str, deleting: bool, already_deployed: str | None) -> None:
    """Which pushed refs may deploy: main or master, not deleted, one per push."""
    branch = ref.removeprefix("refs/heads/")
    if not ref.startswith("refs/heads/") or branch not in BRANCHES_THAT_DEPLOY:
        raise PaasError(f"only main or master deploys: use 'git push paas {branch}:main'")
    if deleting:
        raise PaasError(f"deleting {branch} is not allowed")
    if already_deployed is not None:
        done = already_deployed.removeprefix("refs/heads/")
        raise PaasError(f"push one deploy branch at a time: {done} was deployed, {branch} was not")


def check_ref_unmoved(ref: str, old_sha: bytes, current: bytes | None, zero: bytes) -> None:
    """The branch must still be where the pusher saw it (it may have waited for another deploy)."""
    expected = None if old_sha == zero else old_sha
    if current != expected:
        branch = ref.removeprefix("refs/heads/")
        raise PaasError(f"{branch} moved while this push waited: pull, then push again")


def deploy_push(ctx: Context, app_name: str, repo: Repo, commit_sha: str, log: BuildLog) -> Release:
    """What `git push` does after the pack is stored and before the ref moves.

    The caller holds the app's lock until the ref has moved (see git_receiver.pack_process).
    """
    app = apps_service.ensure_app(ctx, app_name)
    setup = app_json.prepare(ctx, app, repo, commit_sha, log)  # app.json, on the first deploy only
    build_id = ctx.store.create_build(app.id, commit_sha, ctx.actor)
    config = ctx.store.get_config(app.id)
    try:
        result = builder.build(ctx, app.name, build_id, repo, commit_sha, config, log)
    except PaasError as exc:
        log.error(str(exc))
        ctx.store.finish_build(build_id, "failed", log.text())
        ctx.store.add_event(app.name, ctx.actor, "build:failed", commit_sha[:7])
        raise builder.BuildFailed("build failed") from exc
    ctx.store.finish_build(
        build_id, "succeeded", log.text(), result.image, result.processes, result.buildpack
    )
    formation = default_formation(result.processes, ctx.store.get_formation(app.id) or setup.formation)
    release = ctx.store.create_release(
        app.id, build_id, config, formation, f"Deploy {commit_sha[:7]}", ctx.actor
    )
    log.step(f"Releasing v{release.version}")
    deploy_release(ctx, app, release, log)
    ctx.store.set_formation(app.id, formation)
    try:
        app_json.after_deploy(ctx, app, release, setup, log)
    except PaasError as exc:  # the release is live: report, don't reject the push
        log.error(f"app.json postdeploy failed (the release is live): {exc}")
        ctx.store.add_event(app.name, ctx.actor, "postdeploy:failed", str(exc)[:200])
    log.done(f"Application deployed: {apps_service.app_url(ctx, app.name)}")
    return release


def deploy_release(
    ctx: Context,
    app: App,
    release: Release,
    log: BuildLog,
    only_types: set[str] | None = None,
) -> None:
    """Start the release's containers, check them, switch the router, retire the old ones.

    With `only_types`, only those process types are replaced (`ps:restart <app> <type>`).
    Any failure stops the new containers and leaves what ran before running and routed.
    """
    build = ctx.store.get_build(release.build_id) if release.build_id else None
    if build is None or not build.image:
        raise DeployFailed(f"release v{release.version} has no image to run")
    client = ctx.docker
    instance = ctx.settings.instance_id
    current = sched.app_containers(client, instance, app.name)
    replaced = [c for c in current if only_types is None or c.labels.get(names.LABEL_TYPE) in only_types]
    kept = [c for c in current if c not in replaced]
    started = []
    try:
        if release.status == "pending" and only_types is None:  # a new release: its release phase first
            release_phase.run_release_command(
                ctx, app.name, release.version, build.image, build.processes, dict(release.config), log
            )
        port = builder.image_port(client, build.image)
        for ptype, quantity in sorted(release.formation.items()):
            if ptype not in build.processes or (only_types is not None and ptype not in only_types):
                continue
            for index in range(1, quantity + 1):
                spec = sched.ProcessSpec(
                    instance, app.name, release.version, ptype, index, build.image, dict(release.config), port
                )
                log.detail(f"starting {spec.dyno}")
                started.append(sched.start_process(client, spec))
        run_checks(ctx, app, build, started, log)
        ctx.router.set_app(app.name, hostnames(ctx, app.name), sched.web_upstreams([*started, *kept]))
    except Exception as exc:
        sched.stop_and_remove(started, timeout=2)
        # Only a new release can fail here: a restart of the current one leaves it current.
        if release.status == "pending":
            ctx.store.set_release_status(release.id, "failed")
        ctx.store.add_event(app.name, ctx.actor, "release:failed", f"v{release.version}: {exc}")
        if not isinstance(exc, PaasError | docker.errors.DockerException):
            raise
        log.error(str(exc))
        for line in getattr(exc, "log_tail", []):
            log.detail(line)
        raise DeployFailed(f"deploy of v{release.version} failed: {exc}") from exc
    if release.status == "pending":
        ctx.store.set_release_status(release.id, "succeeded")
        ctx.store.add_event(app.name, ctx.actor, "release", f"v{release.version} {release.description}")
    if app.stopped:
        ctx.store.set_stopped(app.id, False)
    if replaced:
        log.detail(f"stopping {len(replaced)} old process(es)")
        sched.stop_and_remove(replaced, timeout=stop_timeout(ctx, app))
    try:
        gc.collect(ctx, app)
    except (PaasError, docker.errors.DockerException) as exc:  # garbage can wait for the next deploy
        log.detail(f"cleanup skipped: {exc}")


def run_checks(ctx: Context, app: App, build: Build, started: list, log: BuildLog) -> None:
    """Default and app.json checks for each new container (unless disabled), then the settle."""
    custom = checks_service.checks_for(ctx, app, build)
    disabled = checks_service.disabled_types(ctx, app)
    host = hostnames(ctx, app.name)[0]
    checked = []
    for c in started:
        ptype = c.labels.get(names.LABEL_TYPE, "")
        if checks_service.is_disabled(disabled, ptype):
            continue
        checked.append(c)
        if ptype == "web":
            sched.wait_until_serving(c, ctx.settings.boot_timeout, host)
            for check in custom.get(ptype, []):
                log.detail(f"checking {ptype}.{c.labels.get(names.LABEL_INDEX)}: {check.name}")
                health.run_startup_check(c, check, host)
    if disabled:
        log.detail(
            "checks disabled for "
            + ", ".join(sorted("all" if d == checks_service.ALL else d for d in disabled))
        )
    sched.settle(checked, ctx.settings.settle_seconds)


def stop_timeout(ctx: Context, app: App) -> int:
    value = ctx.store.get_setting(app.id, "stop_timeout")
    return int(value) if value else ctx.settings.stop_timeout


def sync_app_route(ctx: Context, app_name: str) -> None:
    """Route the app's hostnames to its running web containers of the current release."""
    app = ctx.store.get_app(app_name)
    if app is None:
        return
    release = ctx.store.current_release(app.id)
    running = [
        c
        for c in sched.app_containers(ctx.docker, ctx.settings.instance_id, app.name, all_states=False)
        if release and c.labels.get(names.LABEL_RELEASE) == str(release.version)
    ]
    ctx.router.set_app(app.name, hostnames(ctx, app.name), sched.web_upstreams(running))
