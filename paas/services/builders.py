"""How an app is built, in Dokku's words: `builder`, `builder-herokuish`, `buildpacks`, `app-json`.

- `builder:set <app> selected herokuish|dockerfile` forces the buildpacks (Dokku's herokuish
  builder; ours are built in, see README) or the Dockerfile; unset, the app is detected.
  `build-dir` builds a subdirectory of the repository as if it were the root. `skip-cleanup true`
  keeps a buildpack build's containers, stopped, for `docker` to inspect, until the app's next
  build or `cleanup` (the reconcile pass leaves them; they count against the disk quota).
- `builder-herokuish:set <app> allowed false` refuses buildpack builds (Dockerfile-only apps).
- `buildpacks:add/set/remove/clear/list` keep an app's buildpack list. A deploy uses, in Dokku's
  order, BUILDPACK_URL (config), else this list, else `.buildpacks` in the repository, else
  detection. `heroku/python`, `heroku/nodejs` (also as Heroku's GitHub URLs) are the built-in
  buildpacks; any other https:// or git:// URL is cloned in the build container.
- `app-json:set <app> appjson-path <path>` reads app.json from another path of the repository.
"""

from __future__ import annotations

import re

from paas.buildpacks import detect
from paas.core.context import Context
from paas.errors import PaasError
from paas.services import access, git, properties
from paas.store import App

BUILDERS = ("herokuish", "dockerfile")
LIST_SETTING = "buildpacks.list"
# Heroku's shorthands as Dokku expands them; the built-in ones (python, nodejs) build with ours.
HEROKU_URL = "https://github.com/heroku/heroku-buildpack-{}.git"
SHORTHAND_RE = re.compile(r"^([a-z0-9-]+)/([a-z0-9._-]+)$")
PATH_RE = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9._/-]{1,255}$")


def _builder(ctx: Context, value: str) -> str:
    if value not in BUILDERS:
        raise PaasError(f"unknown builder {value!r}: use {' or '.join(BUILDERS)} (or nothing: detected)")
    return value


def _bool(ctx: Context, value: str) -> str:
    if value not in ("true", "false"):
        raise PaasError(f"use true or false, not {value!r}")
    return value


def _path(ctx: Context, value: str) -> str:
    """A path inside the repository: relative, no `..`."""
    if not PATH_RE.fullmatch(value):
        raise PaasError(f"invalid path {value!r}: a relative path inside the repository, without '..'")
    return value.strip("/")


properties.register(
    properties.Namespace(
        "builder",
        props=(
            properties.Prop("selected", check=_builder),
            properties.Prop("build-dir", check=_path),
            properties.Prop("skip-cleanup", default="false", check=_bool),
        ),
    )
)
properties.register(
    properties.Namespace(
        "builder-herokuish", props=(properties.Prop("allowed", default="true", check=_bool),)
    )
)
properties.register(
    properties.Namespace(
        "app-json", props=(properties.Prop("appjson-path", default="app.json", check=_path),)
    )
)


def skip_cleanup(ctx: Context, app: App) -> bool:
    """`builder:set <app> skip-cleanup true`: the app's stopped build containers are kept."""
    return properties.flag(ctx, app, "builder", "skip-cleanup")


def expand(ctx: Context, raw: str) -> str:
    """A buildpack as the list keeps it: Heroku's `owner/name` shorthand becomes the URL Dokku
    stores; anything else must be a buildpack `BUILDPACK_URL` would take."""
    value = raw.strip()
    m = SHORTHAND_RE.fullmatch(value)
    if m and not value.startswith(("http", "git")):
        owner, name = m.groups()
        if owner == "heroku":
            value = HEROKU_URL.format(name)
        else:
            value = f"https://github.com/{owner}/heroku-buildpack-{name}.git"
    detect.parse_buildpack(ctx.settings, value, "buildpack")  # the one rule for what a buildpack is
    if "://" not in value:
        raise PaasError(f"{raw!r} is not a buildpack URL: use heroku/<name> or an https:// git URL")
    return value


def buildpack_list(ctx: Context, app: App) -> list[str]:
    raw = ctx.store.get_setting(app.id, LIST_SETTING) or ""
    return [b for b in raw.split("\n") if b]


def _save(ctx: Context, app: App, buildpacks: list[str], action: str, detail: str) -> list[str]:
    if len(buildpacks) > detect.MAX_BUILDPACKS:
        raise PaasError(f"at most {detect.MAX_BUILDPACKS} buildpacks per app")
    ctx.store.set_setting(app.id, LIST_SETTING, "\n".join(buildpacks) or None)
    ctx.store.add_event(app.name, ctx.actor, action, detail[:200])
    return buildpacks


def _index(raw: int | None, length: int) -> int:
    """Dokku's 1-based --index, past the end meaning the end."""
    if raw is None:
        return length
    if raw < 1:
        raise PaasError("--index counts from 1")
    return min(raw - 1, length)


def add(ctx: Context, app_name: str, buildpack: str, index: int | None = None) -> list[str]:
    """`buildpacks:add [--index N] <app> <buildpack>` (one already listed is refused)."""
    app = access.authorize(ctx, app_name, "buildpacks:add")
    url = expand(ctx, buildpack)
    current = buildpack_list(ctx, app)
    if url in current:
        raise PaasError(f"{url} is already in the buildpack list of {app.name}")
    current.insert(_index(index, len(current)), url)
    return _save(ctx, app, current, "buildpacks:add", url)


def set_(ctx: Context, app_name: str, buildpack: str, index: int | None = None) -> list[str]:
    """`buildpacks:set [--index N] <app> <buildpack>`: replace the one at N (default 1); past the
    end, append."""
    app = access.authorize(ctx, app_name, "buildpacks:set")
    url = expand(ctx, buildpack)
    current = buildpack_list(ctx, app)
    position = _index(index if index is not None else 1, len(current))
    if position < len(current):
        current[position] = url
    else:
        current.append(url)
    return _save(ctx, app, current, "buildpacks:set", url)


def remove(ctx: Context, app_name: str, buildpack: str | None, index: int | None = None) -> list[str]:
    """`buildpacks:remove <app> <buildpack>` or `--index N`; one that is not listed is an error."""
    app = access.authorize(ctx, app_name, "buildpacks:remove")
    current = buildpack_list(ctx, app)
    if (buildpack is None) == (index is None):
        raise PaasError("give a buildpack or --index, not both")
    if index is not None:
        if not 1 <= index <= len(current):
            raise PaasError(f"no buildpack at index {index}: {app.name} lists {len(current)}")
        gone = current.pop(index - 1)
    else:
        gone = expand(ctx, buildpack or "")
        if gone not in current:
            raise PaasError(f"{gone} is not in the buildpack list of {app.name}")
        current.remove(gone)
    return _save(ctx, app, current, "buildpacks:remove", gone)


def clear(ctx: Context, app_name: str) -> None:
    app = access.authorize(ctx, app_name, "buildpacks:clear")
    _save(ctx, app, [], "buildpacks:clear", "")


def listed(ctx: Context, app_name: str) -> list[str]:
    app = access.authorize(ctx, app_name, "buildpacks:list")
    return buildpack_list(ctx, app)


properties.register(
    properties.Namespace("buildpacks", info=lambda ctx, app: {"list": ",".join(buildpack_list(ctx, app))})
)


def options(
    ctx: Context, app: App, source_image: str | None = None, manifest_buildpacks: tuple[str, ...] = ()
) -> detect.Options:
    """What the builder needs to know from the app's properties (and app.json's `buildpacks`,
    Heroku's shorthands expanded as buildpacks:add does); a git:from-image commit is always
    built by the Dockerfile builder, FROM its (vetted) image."""
    if source_image:
        return detect.Options(builder="dockerfile", base_images=(source_image,))
    return detect.Options(
        builder=properties.value(ctx, app, "builder", "selected"),
        buildpacks=tuple(buildpack_list(ctx, app)),
        buildpacks_allowed=properties.flag(ctx, app, "builder-herokuish", "allowed"),
        build_dir=properties.value(ctx, app, "builder", "build-dir"),
        manifest_buildpacks=tuple(expand(ctx, b) for b in manifest_buildpacks),
        keep_git_dir=git.keep_git_dir(ctx, app),
        per_push_keys=git.per_push_keys(ctx, app),
        keep_containers=skip_cleanup(ctx, app),
    )
