"""The backup plugin's settings (PAAS_BACKUP_*), kept with the plugin and read through
`Settings.env` like any plugin's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from paas.plugin_api import Settings

DEFAULT_KEY = "/etc/paas/backup.key"


@dataclass(frozen=True)
class BackupSettings:
    target: str | None  # PAAS_BACKUP_TARGET: where backups go unless --to says (a restic repository)
    password_file: Path  # PAAS_BACKUP_PASSWORD_FILE: the key that encrypts them (off this machine too)


def backup(settings: Settings) -> BackupSettings:
    return BackupSettings(
        target=settings.env("PAAS_BACKUP_TARGET"),
        password_file=Path(settings.env("PAAS_BACKUP_PASSWORD_FILE", DEFAULT_KEY) or DEFAULT_KEY),
    )
