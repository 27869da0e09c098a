"""`git push`: what happens after the pack is stored and before the ref moves.

Reads app.json once into the manifest kept with the build, lets plugins refuse the push, builds,
records the release and deploys it (deploy.py). The caller holds the app's lock until the ref has
moved (see git_receiver.pack_process).
"""

from __future__ import annotations

from dulwich.repo import Repo

from paas.buildpacks import builder
from paas.buildpacks.result import BuildFailed
from paas.buildpacks.source import SourceTree
from paas.core import manifest as manifest_mod
from paas.core import names
from paas.core.context import Context
from paas.core.manifest import Manifest, PushedSource
from paas.core.output import BuildLog
from paas.core.validation import BRANCHES_THAT_DEPLOY
from paas.errors import PaasError
from paas.services import access, builders, disk, first_deploy, git, lookup, properties, quotas, release_phase
from paas.services import apps as apps_service
from paas.services.deploy import deploy_release
from paas.services.locks import app_lock
from paas.services.releases import default_formation
from paas.store import Release


def check_push_ref(
    ref: str, deleting: bool, already_deployed: str | None, branches: tuple[str, ...] = BRANCHES_THAT_DEPLOY
) -> None:
    """Which pushed refs may deploy: the deploy branches (git.py), not deleted, one per push."""
    branch = ref.removeprefix("refs/heads/")
    if not ref.startswith("refs/heads/") or branch not in branches:
        which = " or ".join(branches)
        raise PaasError(f"only {which} deploys: use 'git push paas {branch}:{branches[0]}'")
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


def read_manifest(tree: SourceTree, log: BuildLog, path: str = "app.json") -> Manifest | None:
    text = tree.read(path)
    if text is None:
        return None
    manifest = manifest_mod.parse(text)
    if manifest.ignored_keys:
        log.detail(f"app.json: ignoring what paas does not support: {', '.join(manifest.ignored_keys)}")
    return manifest


def deploy_push(
    ctx: Context, app_name: str, repo: Repo, commit_sha: str, log: BuildLog, source_image: str | None = None
) -> Release:
    """Build the pushed commit, release it, deploy it; any failure leaves what runs untouched.
    `source_image`: the commit is git:from-image's Dockerfile, which may build FROM that image."""
    app = apps_service.ensure_app(ctx, app_name)
    disk.require_free(ctx)  # before anything is built or changed
    quotas.require_disk(ctx, app)
    quotas.require_room(ctx, app, quotas.running_formation(ctx, app) or {"web": 1})  # known after the build
    options = builders.options(ctx, app, source_image)
    tree = SourceTree(repo, commit_sha)
    if options.build_dir:
        tree = tree.subdir(options.build_dir)
    manifest = read_manifest(tree, log, properties.value(ctx, app, "app-json", "appjson-path"))
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
    git.set_rev_env(ctx, app, commit_sha)
    config = ctx.store.get_config(app.id)
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
    ctx.store.set_formation(app.id, formation)
    properties.record(ctx, app, "git", "source-image", source_image)  # a git push: none
    try:
        first_deploy.after_deploy(ctx, app, release, setup, log)
        if manifest and manifest.dokku_postdeploy:
            release_phase.run_postdeploy(ctx, app, release, result.image, manifest.dokku_postdeploy, log)
    except PaasError as exc:  # the release is live: report, don't reject the push
        log.error(f"app.json postdeploy failed (the release is live): {exc}")
        ctx.store.add_event(app.name, ctx.actor, "postdeploy:failed", str(exc)[:200])
    log.done(f"Application deployed: {lookup.app_url(ctx, app.name)}")
    return release


def rebuild(ctx: Context, app_name: str, log: BuildLog) -> Release:
    """`ps:rebuild`: build the current release's commit again and deploy it, like a push of it."""
    app = access.authorize(ctx, app_name, "ps:rebuild")
    release = ctx.store.current_release(app.id)
    build = ctx.store.build_of(release)
    if build is None:
        raise PaasError(f"{app.name} has not been deployed yet: push it first")
    repo = Repo(str(names.repo_path(ctx.settings, app.name)))
    source_image = properties.raw(ctx, app, "git", "source-image") or None
    try:
        with app_lock(ctx, app.name):
            return deploy_push(ctx, app.name, repo, build.commit_sha, log, source_image)
    finally:
        repo.close()
