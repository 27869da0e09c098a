"""backup: the whole platform backed up with restic (encrypted, deduplicated, checked) and
restored onto a new server with one command, or one app into a running platform.

Written as a third-party plugin could be: it reaches the store, the repos and the apps through
the services, and other plugins' state through the hooks `paas_backup_paths`, `paas_backup_dump`
and `paas_backup_restore` (paas/plugins.py). The rules are in service.py, restic in restic.py.
"""

from __future__ import annotations

import logging

import click

from paas.core.context import Context
from paas.plugins import hookimpl

from . import service
from .commands import COMMANDS

__version__ = "1.0"
log = logging.getLogger("paas.backup")


@hookimpl
def paas_commands() -> list[click.Command]:
    return list(COMMANDS)


@hookimpl
def paas_reconcile(ctx: Context) -> None:
    if service.reconcile(ctx):
        log.info("scheduled backup started")
