"""`git push`: what happens after the pack is stored and before the ref moves.

Reads app.json once into the manifest kept with the build, lets plugins refuse the push, builds,
records the release and deploys it (deploy.py). The caller holds the app's lock until the ref has
moved (see git_receiver.pack_process).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import docker
from dulwich.repo import Repo

from paas.buildpacks import builder
from paas.buildpacks.result import BuildFailed
from paas.buildpacks.source import SourceTree
from paas.core import manifest as manifest_mod
from paas.core import names, validation
from paas.core.context import Context
from paas.core.manifest import Manifest, PushedSource
from paas.core.output import BuildLog
from paas.core.validation import BRANCHES_THAT_DEPLOY
from paas.errors import PaasError
from paas.services import access, builders, disk, first_deploy, git, lookup, properties, quotas, release_phase
from paas.services import apps as apps_service
from paas.services.deploy import deploy_release
from paas.services.locks import app_lock
from paas.services.release_phase import PostdeployFailed
from paas.services.releases import default_formation
from paas.store import App, Release

logger = logging.getLogger("paas.push")

REVIEW_ENVIRONMENT = "review"  # app.json's environment of review apps (a parent's pushed branches)


def check_push_ref(
    ref: str, deleting: bool, already_deployed: str | None, branches: tuple[str, ...] = BRANCHES_THAT_DEPLOY
) -> bool:
    """Which pushed refs may deploy: the app's deploy branches (git.py), not deleted, one per
    push. False: another branch, which the plugins may take (`push_branch`: review apps)."""
    branch = ref.removeprefix("refs/heads/")
    if not ref.startswith("refs/heads/"):
        raise PaasError(_branch_hint(branch, branches))
    if branch not in branches:
        return False
    if deleting:
        raise PaasError(f"deleting {branch} is not allowed")
    if already_deployed is not None:
        done = already_deployed.removeprefix("refs/heads/")
        raise PaasError(f"push one deploy branch at a time: {done} was deployed, {branch} was not")
    return True


def check_ref_unmoved(ref: str, old_sha: bytes, current: bytes | None, zero: bytes) -> None:
    """The branch must still be where the pusher saw it (it may have waited for another deploy)."""
    expected = None if old_sha == zero else old_sha
    if current != expected:
        branch = ref.removeprefix("refs/heads/")
        raise PaasError(f"{branch} moved while this push waited: pull, then push again")


def read_manifest(
    tree: SourceTree, log: BuildLog, path: str = "app.json", plugin_keys: Iterable[str] = ()
) -> Manifest | None:
    text = tree.read(path)
    if text is None:
        return None
    manifest = manifest_mod.parse(text)
    if ignored := manifest.ignored_keys(plugin_keys):
        log.detail(f"app.json: ignoring what paas does not support: {', '.join(ignored)}")
    return manifest


def check_branch_unmoved(repo: Repo, branch: str, old_sha: str | None) -> None:
    """`check_ref_unmoved` for a branch that does not deploy (a plugin's, under its own lock)."""
    zero = b"0" * 40
    ref = f"refs/heads/{branch}"
    current = repo.refs.as_dict().get(ref.encode())
    check_ref_unmoved(ref, old_sha.encode() if old_sha else zero, current, zero)


def _branch_hint(branch: str, branches: tuple[str, ...]) -> str:
    """The refusal of a branch that deploys nothing, naming the branches that do."""
    return f"only {' or '.join(branches)} deploys: use 'git push paas {branch}:{branches[0]}'"


def deploy_branch_hint(ctx: Context, app_name: str, branch: str) -> str:
    """`_branch_hint` with the app's own deploy branches (git:set deploy-branch), for a plugin
    that refuses a pushed branch too."""
    return _branch_hint(branch, git.deploy_branches(ctx, app_name))


def deploy_push(
    ctx: Context, app_name: str, repo: Repo, commit_sha: str, log: BuildLog, source_image: str | None = None
) -> Release:
    """Build the pushed commit, release it, deploy it; any failure leaves what runs untouched.
    `source_image`: the commit is git:from-image's Dockerfile, which may build FROM that image."""
    app = apps_service.ensure_app(ctx, app_name)
    return build_and_deploy(ctx, app, repo, commit_sha, log, source_image=source_image)


def push_branch(
    ctx: Context,
    app_name: str,
    ref: bytes,
    old_sha: str | None,
    new_sha: str | None,
    repo: Repo,
    log: BuildLog,
) -> str:
    """A pushed branch that does not deploy `app_name` itself (`new_sha` None: deleted), offered
    to the plugins (`paas_receive_branch`: the review_apps plugin makes a review app of it); the
    line the plugin gives back. Refused with the deploy branch hint when no plugin takes it."""
    app = access.authorize(ctx, app_name, "git:push")
    branch = validation.branch_name(ref)
    said = ctx.plugins.call_first(
        "paas_receive_branch",
        ctx=ctx,
        app=app,
        branch=branch,
        old_sha=old_sha,
        new_sha=new_sha,
        repo=repo,
        log=log,
    )
    if said is None:
        raise PaasError(deploy_branch_hint(ctx, app.name, branch))
    return str(said)


def build_and_deploy(
    ctx: Context,
    app: App,
    repo: Repo,
    commit_sha: str,
    log: BuildLog,
    environment: str | None = None,
    source_image: str | None = None,
) -> Release:
    """`deploy_push` once the app is known and may be pushed (also a review app's build from its
    parent's repo, with app.json's `environments.<environment>` applied)."""
    disk.require_free(ctx)  # before anything is built or changed
    quotas.require_disk(ctx, app)
    quotas.require_room(ctx, app, quotas.running_formation(ctx, app) or {"web": 1})  # known after the build
    options = builders.options(ctx, app, source_image)
    tree = SourceTree(repo, commit_sha)
    if options.build_dir:
        tree = tree.subdir(options.build_dir)
    path = properties.value(ctx, app, "app-json", "appjson-path")
    manifest = read_manifest(tree, log, path, ctx.plugins.app_json_keys())
    if manifest is not None and environment is not None:
        manifest = manifest.for_environment(environment)
    if manifest is not None and manifest.buildpacks and not source_image:
        options = builders.options(ctx, app, None, manifest.buildpacks)
    ctx.plugins.call_pre(
        "paas_pre_build",
        ctx=ctx,
        app=app,
        source=PushedSource(commit_sha, manifest or Manifest(), tree.read),
        log=log,
    )
    setup = first_deploy.prepare(ctx, app, manifest, log)  # app.json, on the first deploy only
    build_id = ctx.store.create_build(app.id, commit_sha, ctx.actor, manifest.data if manifest else None)
    config = git.with_rev_env(ctx, app, ctx.store.get_config(app.id), commit_sha)
    try:
        result = builder.build(ctx, app.name, build_id, repo, commit_sha, config, log, options)
    except PaasError as exc:
        log.error(str(exc))
        ctx.store.finish_build(build_id, "failed", log.text())
        ctx.store.prune_build_outputs(app.id, ctx.settings.keep_build_outputs)
        ctx.store.add_event(app.name, ctx.actor, "build:failed", commit_sha[:7])
        ctx.plugins.call_post(
            "paas_deploy_failed",
            ctx=ctx,
            app=app,
            release=None,
            error=f"build of {commit_sha[:7]} failed: {exc}"[:300],
            log=log,
        )
        raise BuildFailed("build failed") from exc
    ctx.store.finish_build(
        build_id, "succeeded", log.text(), result.image, result.processes, result.buildpack
    )
    ctx.store.prune_build_outputs(app.id, ctx.settings.keep_build_outputs)
    build = ctx.store.get_build(build_id)
    ctx.plugins.call_post("paas_post_build", ctx=ctx, app=app, build=build, log=log)
    formation = default_formation(
        result.processes, ctx.store.get_formation(app.id), manifest.formation if manifest else None
    )
    quotas.require_room(ctx, app, formation)
    release = ctx.store.create_release(
        app.id, build_id, config, formation, f"Deploy {commit_sha[:7]}", ctx.actor
    )
    log.step(f"Releasing v{release.version}")
    deploy_release(ctx, app, release, log, predeploy=manifest.dokku_predeploy if manifest else None)
    ctx.store.replace_config(app.id, config)  # GIT_REV: stored once its release is live
    ctx.store.set_formation(app.id, formation)
    properties.record(ctx, app, "git", "source-image", source_image)  # a git push: none
    tasks = [lambda: first_deploy.after_deploy(ctx, app, release, setup, log)]
    if manifest and manifest.dokku_postdeploy:
        command = manifest.dokku_postdeploy
        tasks.append(lambda: release_phase.run_postdeploy(ctx, app, release, result.image, command, log))
    failed = _postdeploy(ctx, app, log, tasks)
    log.done(f"Application deployed: {lookup.app_url(ctx, app.name)}")
    if failed:
        raise PostdeployFailed("; ".join(failed), release)
    return release


def _postdeploy(ctx: Context, app: App, log: BuildLog, tasks: list[Callable[[], None]]) -> list[str]:
    """Each postdeploy task (the first deploy's, then Dokku's), whatever the one before did; what
    failed, said in the log and the app's events. The release is live: nothing is undone."""
    failed = []
    for task in tasks:
        try:
            task()
        except Exception as exc:
            if not isinstance(exc, PaasError):  # the engine's: the task could not even run
                logger.exception("postdeploy of %s", app.name)
            why = str(exc) if isinstance(exc, PostdeployFailed) else f"postdeploy could not run: {exc}"
            log.error(why)
            ctx.store.add_event(app.name, ctx.actor, "postdeploy:failed", why[:200])
            failed.append(why)
    return failed


def rebuild(ctx: Context, app_name: str, log: BuildLog) -> Release:
    """`ps:rebuild`: build the current release's commit again and deploy it, like a push of it."""
    app = access.authorize(ctx, app_name, "ps:rebuild")
    release = ctx.store.current_release(app.id)
    build = ctx.store.build_of(release)
    if build is None:
        raise PaasError(f"{app.name} has not been deployed yet: push it first")
    # A review app's commit is in its parent's repo, and app.json's review environment applies.
    parent = ctx.store.get_app_by_id(app.parent_id) if app.parent_id is not None else None
    repo = Repo(str(names.repo_path(ctx.settings, parent.name if parent else app.name)))
    source_image = properties.raw(ctx, app, "git", "source-image") or None
    try:
        with app_lock(ctx, app.name):
            return build_and_deploy(
                ctx,
                app,
                repo,
                build.commit_sha,
                log,
                environment=REVIEW_ENVIRONMENT if parent else None,
                source_image=source_image,
            )
    finally:
        repo.close()


def redeploy_current(ctx: Context, app_name: str, log: BuildLog) -> Release | None:
    """After a restore (the images are gone, the records are back): build the current release's
    commit from the repo into that release's own build again and deploy the same release, so the
    release history stays as it was. Builds whose images are gone can no longer be rolled back to
    and are marked so. A stopped app is built, not started. The caller holds the app's lock.
    Returns the release deployed (None: the app was never deployed)."""
    access.require_admin(ctx, "backup:restore", "rebuild an app from a backup")
    app = lookup.get_app(ctx, app_name)
    release = ctx.store.current_release(app.id)
    build = ctx.store.get_build(release.build_id) if release and release.build_id else None
    if release is None or build is None:
        return None
    repo = Repo(str(names.repo_path(ctx.settings, app.name)))
    try:
        result = builder.build(ctx, app.name, build.id, repo, build.commit_sha, release.config, log)
    finally:
        repo.close()
    ctx.store.finish_build(
        build.id, "succeeded", build.output, result.image, result.processes, result.buildpack
    )
    for other in ctx.store.list_builds(app.id):
        if other.id != build.id and other.image:
            try:
                ctx.docker.images.get(other.image)
            except docker.errors.ImageNotFound:
                ctx.store.forget_image(other.id)
    if not app.stopped:
        deploy_release(ctx, app, release, log)
    return release
