"""postgres: Dokku-style Postgres services linked to apps as DATABASE_URL, with backups.

The kind (image, TLS, password, dump and restore) is in kind.py; every rule shared with the
redis plugin (records, links, networks, backups, reconcile, app.json addons) is in
paas.services.backing, and the commands are made by paas.commands.backing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from paas.commands.backing import commands_for
from paas.core.backup import RestoreSource
from paas.core.context import Context
from paas.core.manifest import PushedSource
from paas.core.output import BuildLog
from paas.plugins import hookimpl
from paas.services import backing
from paas.store import App

from .kind import KIND

if TYPE_CHECKING:
    from flask import Blueprint

__version__ = "1.0"
backing.register(KIND)


@hookimpl
def paas_commands() -> list[click.Command]:
    return commands_for(KIND)


@hookimpl
def paas_web_blueprints() -> list[Blueprint]:
    """Only the dashboard needs Flask: imported here, not at every command's start."""
    from paas.web.backing import blueprint

    return [blueprint()]


@hookimpl
def paas_pre_build(ctx: Context, app: App, source: PushedSource, log: BuildLog) -> None:
    """app.json addons, on the first deploy: before the build reads the config, so the build,
    the release, its release phase and its processes all have the URL; a failure refuses the push."""
    backing.provision_addons(ctx, KIND, app, source.manifest.addons, log)


@hookimpl
def paas_app_destroyed(ctx: Context, app: App, log: BuildLog) -> None:
    backing.app_destroyed(ctx, KIND, app, log)


@hookimpl
def paas_app_renamed(ctx: Context, app: App, old_name: str) -> None:
    backing.app_renamed(ctx, KIND, app, old_name)


@hookimpl
def paas_reconcile(ctx: Context) -> None:
    backing.reconcile(ctx, KIND)


@hookimpl
def paas_backup_paths(ctx: Context) -> list[Path]:
    return backing.backup_paths(ctx, KIND)


@hookimpl
def paas_backup_dump(ctx: Context, folder: Path, log: BuildLog) -> None:
    backing.dump_all(ctx, KIND, folder, log)


@hookimpl
def paas_backup_restore(ctx: Context, source: RestoreSource, log: BuildLog) -> str:
    return backing.restore_all(ctx, KIND, source, log)
