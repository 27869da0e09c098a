"""What a plugin sees of a backup being restored (the `paas_backup_restore` hook's `source`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RestoreSource:
    """A backup laid out in a scratch folder: its files at their paths relative to the data dir
    they were taken from, the plugins' dumps in `dumps/<plugin name>/`."""

    root: Path
    data_dir: Path  # the data dir the backup was taken from: paths kept in the store name it
    dumps: Path
    # `backup:restore --app`: app name -> (its id in the backup, its id here); None: everything
    apps: dict[str, tuple[int, int]] | None = None

    @property
    def whole(self) -> bool:
        """The whole platform (its files are back already), not some apps into a running one."""
        return self.apps is None

    def includes(self, app: str) -> bool:
        return self.apps is None or app in self.apps

    def relocate(self, path: str, data_dir: Path) -> str:
        """A path under the backup's data dir, under `data_dir` (this server's); others unchanged."""
        old = str(self.data_dir).rstrip("/")
        if path == old or path.startswith(old + "/"):
            return str(data_dir) + path[len(old) :]
        return path
