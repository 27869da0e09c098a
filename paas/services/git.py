"""Dokku's `git` namespace: which branch deploys, the commit env var, the caps on archives.

`git:set <app> deploy-branch <branch>` makes that branch (alone) deploy; unset, `main` and
`master` both do (the computed value says `master`, Dokku's default). `rev-env-var` names the
config var a deploy sets to its commit (GIT_REV; set to nothing, none is set). `keep-git-dir`
puts the repository in the build as `.git`. `source-image` is the image `git:from-image` last
deployed from. `archive-max-files` and `archive-max-size` cap what `git:from-archive` accepts:
server-wide (admins), a tenant cannot raise them.
"""

from __future__ import annotations

import re

from paas.core import validation
from paas.core.context import Context
from paas.core.validation import BRANCHES_THAT_DEPLOY
from paas.errors import PaasError
from paas.services import access, images, properties
from paas.store import App

BRANCH_RE = re.compile(r"^(?!.*\.\.)(?!.*//)(?!/)(?!.*/$)(?!.*\.lock$)[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
DEFAULT_BRANCH = "master"
DEFAULT_MAX_FILES = 10000


def _branch(ctx: Context, value: str) -> str:
    if not BRANCH_RE.fullmatch(value):
        raise PaasError(f"invalid branch name {value!r}: use letters, digits, '.', '_', '-' and '/'")
    return value


def _bool(ctx: Context, value: str) -> str:
    if value not in ("true", "false"):
        raise PaasError(f"use true or false, not {value!r}")
    return value


def _env_var(ctx: Context, value: str) -> str:
    return validation.config_key(value)


def _count(low: int, high: int) -> properties.Check:
    def check(ctx: Context, value: str) -> str:
        if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
            raise PaasError(f"use a whole number from {low} to {high}")
        return str(int(value))

    return check


def deploy_branches(ctx: Context, app_name: str) -> tuple[str, ...]:
    """The branches a push to the app may deploy: the one set for the app (or the server), else
    main and master."""
    app = access.authorize(ctx, app_name, "git:push")
    chosen = properties.raw(ctx, app, "git", "deploy-branch") or properties.global_raw(
        ctx, "git", "deploy-branch"
    )
    return (chosen,) if chosen else BRANCHES_THAT_DEPLOY


def keep_git_dir(ctx: Context, app: App) -> bool:
    """Whether the build gets the repository as `.git`."""
    return properties.flag(ctx, app, "git", "keep-git-dir")


def per_push_keys(ctx: Context, app: App) -> tuple[str, ...]:
    """The config vars every push sets anew (rev-env-var's): a build must not treat them as an
    input of its dependency layer, or no push would reuse it."""
    key = properties.value(ctx, app, "git", "rev-env-var")
    return (key,) if key else ()


def with_rev_env(ctx: Context, app: App, config: dict[str, str], commit_sha: str) -> dict[str, str]:
    """The config a build of `commit_sha` and its release run with: the var `rev-env-var` names
    (GIT_REV, Dokku's) set to the commit; set to nothing, no var is set. The push stores it with
    the release once that is live: a failed build or deploy leaves the config as it was."""
    key = properties.value(ctx, app, "git", "rev-env-var")
    if not key or config.get(key) == commit_sha:
        return config
    out = {**config, key: commit_sha}
    validation.config_size(out)
    return out


def _info(ctx: Context, app: App) -> dict[str, str]:
    release = ctx.store.current_release(app.id)
    build = ctx.store.get_build(release.build_id) if release and release.build_id else None
    return {
        "sha": build.commit_sha if build else "",
        "last-updated-at": release.created_at if release else "",
    }


properties.register(
    properties.Namespace(
        "git",
        props=(
            properties.Prop("deploy-branch", default=DEFAULT_BRANCH, check=_branch),
            properties.Prop("keep-git-dir", default="false", check=_bool),
            properties.Prop("rev-env-var", default="GIT_REV", check=_env_var, empty_disables=True),
            properties.Prop("source-image", check=images.vet, scopes=("app",)),
            properties.Prop(
                "archive-max-files",
                default=str(DEFAULT_MAX_FILES),
                check=_count(1, 1_000_000),
                scopes=("global",),
            ),
            properties.Prop(
                "archive-max-size",
                default=lambda ctx: str(ctx.settings.max_push_bytes),
                check=_count(1, 1 << 40),
                scopes=("global",),
            ),
        ),
        info=_info,
    )
)
