"""datastores: Dokku-style backing services (Postgres, Redis) linked to apps as URLs, with backups.

One kit for every kind of datastore: the rules (records, owners, links, networks, backups,
reconcile, app.json addons) are in service.py, the containers and the commands run inside them in
containers.py, the SSH commands in commands.py, the dashboard's pages in web.py and templates/.
A kind is one module of this folder that defines `KIND` (a `service.Kind`: the image recipe, the
config var a link sets, how to check health, set the password, dump and restore): postgres.py,
redis.py. Adding one (MySQL, a queue) is one new file here.

Each kind is a plugin of its own name (`PAAS_PLUGINS`, as a distribution names several entry
points): `plugins:list` shows postgres and redis, `PAAS_DISABLED_PLUGINS=redis` turns one off,
and a platform backup keeps each kind's dumps under its name.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING

import click

from paas.plugin_api import (
    App,
    BuildLog,
    Context,
    PushedSource,
    RestoreSource,
    access,
    declare_permissions,
    hookimpl,
)

from . import service
from .commands import commands_for
from .service import Kind

if TYPE_CHECKING:
    from flask import Blueprint

__version__ = "1.0"

# Its rows of the permission table (paas/services/access.py), declared when it is imported: what
# each public service function is (the doors test drives each) and its pages' routes. An entry
# names the postgres kind's operation; the redis kind's is the same with its own. Each kind
# declares its commands' rules (KindPlugin).
access.declare_entries(
    __name__,
    {
        "containers": dict.fromkeys(
            (
                "find",
                "all_services",
                "ensure_volume",
                "create",
                "networks_of",
                "address_on",
                "connect",
                "disconnect",
                "remove",
                "remove_volume",
                "exec_stream",
                "exec_capture",
                "wait_healthy",
            ),
            access.INTERNAL,
        ),
        "web": {"blueprint": access.INTERNAL},
        "service": {
            **dict.fromkeys(
                (
                    "register",
                    "kinds",
                    "kind_named",
                    "check_name",
                    "now_iso",
                    "mask",
                    "addon_kind",
                    "verify",
                    "check_record",
                ),
                access.PURE,
            ),
            **dict.fromkeys(
                (
                    "load",
                    "get",
                    "all_records",
                    "service_lock",
                    "container_of",
                    "wait_healthy",
                    "state",
                    "provision_addons",
                    "app_destroyed",
                    "app_renamed",
                    "linked_keys",
                    "owned_count",
                    "reconcile",
                    "prune_scheduled",
                    # a platform backup's part (plugins/backup checks that an admin asks)
                    "backup_paths",
                    "dump_all",
                    "restore_all",
                ),
                access.INTERNAL,
            ),
            "create": "postgres:create",
            "destroy": "postgres:destroy",
            "list_services": "postgres:list",
            "info": "postgres:info",
            "links_of_app": "apps:info",
            "link": "postgres:link",
            "unlink": "postgres:unlink",
            "set_schedule": "postgres:backup-schedule",
            "export": "postgres:export",
            "import_": "postgres:import",
            "backup": "postgres:backup",
            "list_backups": "postgres:backups",
            "backup_path": "postgres:backups",
            "restore": "postgres:restore",
            "connect": "postgres:connect",
            "logs": "postgres:logs",
        },
        "postgres": dict.fromkeys(
            (
                "url",
                "health",
                "reachable",
                "setup",
                "export_cmd",
                "snapshot_cmd",
                "import_cmd",
                "connect_cmd",
            ),
            access.INTERNAL,
        ),
        "redis": dict.fromkeys(
            (
                "url",
                "health",
                "reachable",
                "setup",
                "export_cmd",
                "import_cmd",
                "after_import",
                "connect_cmd",
            ),
            access.INTERNAL,
        ),
    },
)
access.declare_routes(
    {
        "services.index": "postgres:list",
        "services.service": "postgres:info",
        "services.download": "postgres:backups",
    }
)

KIT = frozenset({"commands", "containers", "service", "web"})  # the modules that are no kind


class KindPlugin:
    """The hooks of one kind: each is the kit's, given the kind."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.__version__ = __version__
        self.commands = commands_for(kind)
        # Now, not when the commands are first listed: the dashboard's pages and the hooks check
        # these rules in processes that never list commands.
        declare_permissions(self.commands)

    @hookimpl
    def paas_commands(self) -> list[click.Command]:
        return list(self.commands)

    @hookimpl
    def paas_web_blueprints(self) -> list[Blueprint]:
        """Only the dashboard needs Flask: imported here, not at every command's start."""
        from .web import blueprint

        return [blueprint()]

    @hookimpl
    def paas_pre_build(self, ctx: Context, app: App, source: PushedSource, log: BuildLog) -> None:
        """app.json addons, on the first deploy: before the build reads the config, so the build,
        the release, its release phase and its processes all have the URL; a failure refuses the
        push."""
        service.provision_addons(ctx, self.kind, app, source.manifest.addons, log)

    @hookimpl
    def paas_app_destroyed(self, ctx: Context, app: App, log: BuildLog) -> None:
        service.app_destroyed(ctx, self.kind, app, log)

    @hookimpl
    def paas_quota_held(self, ctx: Context, quota: str, user_id: int) -> int | None:
        return service.owned_count(ctx, self.kind, user_id) if quota == "services" else None

    @hookimpl
    def paas_linked_config_keys(self, ctx: Context, app: App) -> list[str]:
        return sorted(service.linked_keys(ctx, self.kind, app))

    @hookimpl
    def paas_app_renamed(self, ctx: Context, app: App, old_name: str) -> None:
        service.app_renamed(ctx, self.kind, app, old_name)

    @hookimpl
    def paas_reconcile(self, ctx: Context) -> None:
        service.reconcile(ctx, self.kind)

    @hookimpl
    def paas_backup_paths(self, ctx: Context) -> list[Path]:
        return service.backup_paths(ctx, self.kind)

    @hookimpl
    def paas_backup_dump(self, ctx: Context, folder: Path, log: BuildLog) -> None:
        service.dump_all(ctx, self.kind, folder, log)

    @hookimpl
    def paas_backup_restore(self, ctx: Context, source: RestoreSource, log: BuildLog) -> str:
        return service.restore_all(ctx, self.kind, source, log)


def _kinds() -> list[Kind]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name not in KIT and not info.name.startswith("_"):
            found.append(service.register(importlib.import_module(f"{__name__}.{info.name}").KIND))
    return found


PAAS_PLUGINS = {kind.name: KindPlugin(kind) for kind in _kinds()}
