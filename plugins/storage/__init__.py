"""Persistent storage for apps (Dokku's storage plugin): host directories under the storage dir,
bind-mounted into every container of an app from its next release on."""

from __future__ import annotations

from pathlib import Path

import click

from paas.commands import declare_permissions
from paas.core.backup import RestoreSource
from paas.core.container import ContainerSettings
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.plugins import hookimpl
from paas.services.access import INTERNAL, PURE, declare_entries
from paas.store import App, Release

from . import service
from .commands import COMMANDS

# Its rows of the permission table (paas/services/access.py), declared when it is imported: what
# each public service function is (the doors test drives each) and its commands' rules.
declare_entries(
    __name__,
    {
        "service": {
            **dict.fromkeys(("check_name", "check_container_path"), PURE),
            **dict.fromkeys(
                (
                    "storage_root",
                    "check_host_dir",
                    "parse_mount",
                    "list_mounts",
                    "checked_mounts",
                    "unmounted_dirs",
                    "restore_from_backup",
                ),
                INTERNAL,
            ),
            "ensure_directory": "storage:ensure-directory",
            "mounts_of": "storage:list",
            "mount": "storage:mount",
            "unmount": "storage:unmount",
        },
    },
)
declare_permissions(COMMANDS)


@hookimpl
def paas_commands() -> list[click.Command]:
    return COMMANDS


@hookimpl
def paas_pre_deploy(ctx: Context, app: App, release: Release, container: ContainerSettings) -> None:
    """Every container of the app (processes, release phase, postdeploy, run, cron) gets the mounts."""
    for m in service.checked_mounts(ctx, app):
        try:
            container.add_bind(Path(m.host), m.container, m.read_only)
        except ValueError as exc:  # another plugin mounts at the same path
            raise PaasError(f"mount {m.spec}: {exc}") from None


@hookimpl
def paas_app_destroyed(ctx: Context, app: App, log: BuildLog) -> None:
    """The data outlives the app, as in Dokku: say where it is."""
    for path in service.unmounted_dirs(ctx):
        log.step(f"Storage kept: {path} (no app mounts it now; remove it by hand)")


@hookimpl
def paas_backup_paths(ctx: Context) -> list[Path]:
    """The storage folders' files are in a platform backup (read as they are while it runs)."""
    return [service.storage_root(ctx)]


@hookimpl
def paas_backup_restore(ctx: Context, source: RestoreSource, log: BuildLog) -> str:
    return service.restore_from_backup(ctx, source, log)
