"""app.json (the Heroku app manifest): config on creation, initial scale, postdeploy script.

Read from the first pushed commit: `env` values (and `generator: "secret"`) become config vars
before the first build (so the build sees them), `formation` is the initial scale, and
`scripts.postdeploy` runs once after the first deploy. Later pushes leave config and scale alone.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from dulwich.repo import Repo

from paas.buildpacks.release_phase import run_postdeploy
from paas.buildpacks.source import SourceTree
from paas.core import validation
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.store import App, Release

MAX_QUANTITY = 100


class AppJsonError(PaasError):
    """app.json is present but unusable; the message says where."""


@dataclass(frozen=True)
class EnvSpec:
    value: str | None = None
    generator: str | None = None
    required: bool = True


@dataclass(frozen=True)
class Manifest:
    env: dict[str, EnvSpec] = field(default_factory=dict)
    formation: dict[str, int] = field(default_factory=dict)
    postdeploy: str | None = None


def parse(text: str) -> Manifest:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AppJsonError(f"app.json is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise AppJsonError("app.json must hold a JSON object")
    env: dict[str, EnvSpec] = {}
    raw_env = data.get("env") or {}
    if not isinstance(raw_env, dict):
        raise AppJsonError("app.json: env must be an object of KEY: value or KEY: {value, generator}")
    for key, spec in raw_env.items():
        try:
            validation.config_key(key)
        except PaasError as exc:
            raise AppJsonError(f"app.json: env: {exc}") from None
        if isinstance(spec, str):
            env[key] = EnvSpec(value=spec)
        elif isinstance(spec, dict):
            value = spec.get("value")
            generator = spec.get("generator")
            if value is not None and not isinstance(value, str | int | float | bool):
                raise AppJsonError(f"app.json: env.{key}.value must be a string")
            if generator not in (None, "secret"):
                raise AppJsonError(f'app.json: env.{key}.generator: only "secret" is supported')
            text = None if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
            env[key] = EnvSpec(text, generator, bool(spec.get("required", True)))
        else:
            raise AppJsonError(f"app.json: env.{key} must be a string or an object")
        if env[key].value is not None:
            validation.config_value(key, env[key].value or "")
    formation: dict[str, int] = {}
    raw_formation = data.get("formation") or {}
    if not isinstance(raw_formation, dict):
        raise AppJsonError("app.json: formation must be an object of type: {quantity: N}")
    for ptype, spec in raw_formation.items():
        try:
            validation.process_type(ptype)
        except PaasError as exc:
            raise AppJsonError(f"app.json: formation: {exc}") from None
        quantity = spec.get("quantity", 1) if isinstance(spec, dict) else None
        if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 <= quantity <= MAX_QUANTITY:
            raise AppJsonError(
                f"app.json: formation.{ptype}.quantity must be a number from 0 to {MAX_QUANTITY}"
            )
        formation[ptype] = quantity
    scripts = data.get("scripts") or {}
    if not isinstance(scripts, dict):
        raise AppJsonError("app.json: scripts must be an object")
    postdeploy = scripts.get("postdeploy")
    if isinstance(postdeploy, dict):
        postdeploy = postdeploy.get("command")
    if postdeploy is not None and (not isinstance(postdeploy, str) or not postdeploy.strip()):
        raise AppJsonError("app.json: scripts.postdeploy must be a command string")
    return Manifest(env, formation, postdeploy)


def load(tree: SourceTree) -> Manifest | None:
    text = tree.read("app.json")
    return parse(text) if text is not None else None


def initial_config(manifest: Manifest, current: dict[str, str]) -> dict[str, str]:
    """The config vars app.json adds to `current` (never overwriting one already set)."""
    added: dict[str, str] = {}
    missing = []
    for key, spec in manifest.env.items():
        if key in current:
            continue
        if spec.generator == "secret":
            added[key] = secrets.token_hex(32)
        elif spec.value is not None:
            added[key] = spec.value
        elif spec.required:
            missing.append(key)
    if missing:
        raise AppJsonError(
            f"app.json requires {', '.join(missing)}: set {'them' if len(missing) > 1 else 'it'} "
            "with config:set before the first push"
        )
    return added


def describe(added: dict[str, str], manifest: Manifest, log: BuildLog) -> None:
    if not added:
        return
    names = [f"{k} (generated)" if manifest.env[k].generator == "secret" else k for k in sorted(added)]
    log.step("Setting config vars from app.json: " + ", ".join(names))


@dataclass(frozen=True)
class FirstDeploy:
    """What app.json asks of this push: set only while the app has never been deployed."""

    manifest: Manifest | None
    first: bool

    @property
    def formation(self) -> dict[str, int]:
        return dict(self.manifest.formation) if self.first and self.manifest else {}


def prepare(ctx: Context, app: App, repo: Repo, commit_sha: str, log: BuildLog) -> FirstDeploy:
    """Before the first build: app.json's config vars (never overwriting ones already set)."""
    first = ctx.store.current_release(app.id) is None
    if not first:
        return FirstDeploy(None, False)
    manifest = load(SourceTree(repo, commit_sha))
    if manifest is None:
        return FirstDeploy(None, True)
    current = ctx.store.get_config(app.id)
    added = initial_config(manifest, current)
    if added:
        validation.config_size({**current, **added})
        ctx.store.replace_config(app.id, {**current, **added})
        ctx.store.add_event(app.name, ctx.actor, "config", "Set " + ", ".join(sorted(added)) + " (app.json)")
        describe(added, manifest, log)
    return FirstDeploy(manifest, True)


def after_deploy(ctx: Context, app: App, release: Release, setup: FirstDeploy, log: BuildLog) -> None:
    """After the first successful deploy: app.json's `scripts.postdeploy`."""
    if not (setup.first and setup.manifest and setup.manifest.postdeploy):
        return
    build = ctx.store.get_build(release.build_id) if release.build_id else None
    if build is None or not build.image:
        return
    run_postdeploy(
        ctx, app.name, release.version, build.image, setup.manifest.postdeploy, dict(release.config), log
    )
