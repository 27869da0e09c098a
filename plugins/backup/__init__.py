"""backup: the whole platform backed up with restic (encrypted, deduplicated, checked) and
restored onto a new server with one command, or one app into a running platform.

Written as a third-party plugin could be: it reaches the store, the repos and the apps through
the services, and other plugins' state through the hooks `paas_backup_paths`, `paas_backup_dump`
and `paas_backup_restore` (paas/plugins.py). The rules are in service.py, restic in restic.py.
"""

from __future__ import annotations

import logging

import click

from paas.plugin_api import Context, access, declare_permissions, hookimpl

from . import service
from .commands import COMMANDS

__version__ = "1.0"

# Its rows of the permission table (paas/services/access.py), declared when it is imported: what
# each public service function is (the doors test drives each) and its commands' rules.
access.declare_entries(
    __name__,
    {
        "restic": dict.fromkeys(("check_target", "shown", "binary", "mib"), access.PURE),
        "settings": {"backup": access.PURE},
        "service": {
            **dict.fromkeys(("now_iso", "check_id", "schedule_line"), access.PURE),
            **dict.fromkeys(
                ("key_file", "engine", "load_schedule", "last_report", "reconcile"), access.INTERNAL
            ),
            "create": "backup:create",
            "list_backups": "backup:list",
            "verify": "backup:verify",
            "restore": "backup:restore",
            "schedule": "backup:schedule",
        },
    },
)
declare_permissions(COMMANDS)
log = logging.getLogger("paas.backup")


@hookimpl
def paas_commands() -> list[click.Command]:
    return list(COMMANDS)


@hookimpl
def paas_reconcile(ctx: Context) -> None:
    if service.reconcile(ctx):
        log.info("scheduled backup started")
