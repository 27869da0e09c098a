"""What a plugin sees of a backup being restored (the `paas_backup_restore` hook's `source`)."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    # `--app`: a user's id in the backup -> the id of the user of that name here (None: no such user)
    users: dict[int, int | None] = field(default_factory=dict)

    @property
    def whole(self) -> bool:
        """The whole platform (its files are back already), not some apps into a running one."""
        return self.apps is None

    def includes(self, app: str) -> bool:
        return self.apps is None or app in self.apps

    def user_here(self, user_id: int | None) -> int | None:
        """A user id kept in the backup (a service's owner), as this platform knows that user."""
        if user_id is None or self.whole:
            return user_id
        return self.users.get(user_id)

    def app_here(self, name: str, app_id: int | None) -> int | None:
        """An app id kept in the backup, as the restored app's id here (None: not restored here)."""
        if self.apps is None:
            return app_id
        ids = self.apps.get(name)
        return ids[1] if ids is not None and app_id in (None, ids[0]) else None

    def relocate(self, path: str, data_dir: Path) -> str:
        """A path under the backup's data dir, under `data_dir` (this server's); others unchanged."""
        old = str(self.data_dir).rstrip("/")
        if path == old or path.startswith(old + "/"):
            return str(data_dir) + path[len(old) :]
        return path
