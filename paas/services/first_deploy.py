"""What app.json asks of an app's first deploy: config on creation, initial scale, postdeploy.

From the manifest of the first pushed commit (paas.core.manifest): `env` values (and
`generator: "secret"`) become config vars before the first build (so the build sees them), and
`scripts.postdeploy` runs once after the first deploy. (`formation` gives each process type new to
the app its scale, on any deploy: releases.default_formation.)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from paas.core import validation
from paas.core.context import Context
from paas.core.manifest import AppJsonError, Manifest
from paas.core.output import BuildLog
from paas.services.release_phase import run_postdeploy
from paas.store import App, Release


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
            f"app.json requires {', '.join(missing)}: required env var {missing[0]} has no value; "
            f"set {'them' if len(missing) > 1 else 'it'} with config:set before the first push"
        )
    return added


def synced_config(manifest: Manifest, current: dict[str, str]) -> dict[str, str]:
    """The `"sync": true` values app.json sets again on a later deploy (those that changed)."""
    return {
        key: spec.value
        for key, spec in manifest.env.items()
        if spec.sync and spec.value is not None and current.get(key) != spec.value
    }


def describe(added: dict[str, str], manifest: Manifest, log: BuildLog) -> None:
    """Dokku's lines (scripts look for them), then which vars."""
    log.step("Processing app.json env vars")
    if not added:
        return
    names = [f"{k} (generated)" if manifest.env[k].generator == "secret" else k for k in sorted(added)]
    log.detail(f"Setting {len(added)} env var(s) from app.json: " + ", ".join(names))


@dataclass(frozen=True)
class FirstDeploy:
    """What app.json asks of this push: set only while the app has never been deployed."""

    manifest: Manifest | None
    first: bool


def prepare(ctx: Context, app: App, manifest: Manifest | None, log: BuildLog) -> FirstDeploy:
    """Before the build: app.json's config vars on the first deploy (never overwriting ones
    already set), its `sync` ones on every deploy."""
    first = ctx.store.current_release(app.id) is None
    if manifest is None or not manifest.env:
        return FirstDeploy(manifest if first else None, first)
    current = ctx.store.get_config(app.id)
    added = initial_config(manifest, current) if first else synced_config(manifest, current)
    describe(added, manifest, log)
    if added:
        validation.config_size({**current, **added})
        ctx.store.replace_config(app.id, {**current, **added})
        ctx.store.add_event(app.name, ctx.actor, "config", "Set " + ", ".join(sorted(added)) + " (app.json)")
    return FirstDeploy(manifest if first else None, first)


def after_deploy(ctx: Context, app: App, release: Release, setup: FirstDeploy, log: BuildLog) -> None:
    """After the first successful deploy: app.json's `scripts.postdeploy`."""
    if not (setup.first and setup.manifest and setup.manifest.postdeploy):
        return
    build = ctx.store.build_of(release)
    if build is None or not build.image:
        return
    run_postdeploy(ctx, app, release, build.image, setup.manifest.postdeploy, log, first=True)
