"""What every operation needs: settings, the store, who is acting, plugins and a docker handle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paas.core import engine
from paas.plugins import Plugins, plugins
from paas.settings import Settings
from paas.store import Store

if TYPE_CHECKING:
    import docker


@dataclass
class Context:
    """One per process (the host CLI, an SSH session, a push); `actor` is the user's name and
    `user_id` their id (None: look the name up). `checked` collects the (app id, permission) pairs
    this context was allowed, so an open SSH session can be re-checked and ended when access goes."""

    settings: Settings
    store: Store
    actor: str | None = None
    is_admin: bool = False
    on_host: bool = False
    _extra: dict = field(default_factory=dict)
    user_id: int | None = None
    checked: set[tuple[int, str]] = field(default_factory=set)

    @classmethod
    def open(cls, settings: Settings, **kwargs) -> Context:
        settings.ensure_dirs()
        return cls(settings=settings, store=Store(settings.db_path), **kwargs)

    @property
    def docker(self) -> docker.DockerClient:
        if "docker" not in self._extra:  # shared with every for_actor() copy
            self._extra["docker"] = engine.client()
        return self._extra["docker"]

    def shared(self, key: str, make: Callable[[], object]) -> Any:
        """A handle made once per process and shared with every for_actor() copy (the router)."""
        if key not in self._extra:
            self._extra[key] = make()
        return self._extra[key]

    @property
    def plugins(self) -> Plugins:
        """The plugins of this process (loaded once; PAAS_DISABLED_PLUGINS turns some off)."""
        return plugins(set(self.settings.disabled_plugins))

    def for_actor(self, actor: str | None, is_admin: bool, user_id: int | None = None) -> Context:
        """A copy acting as someone else, sharing the store (one SQLite connection per process)
        and the docker and router handles (a dashboard request must not open its own)."""
        return Context(
            settings=self.settings,
            store=self.store,
            actor=actor,
            is_admin=is_admin,
            _extra=self._extra,
            user_id=user_id,
        )
