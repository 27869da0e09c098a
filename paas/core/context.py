"""What every operation needs: settings, the store, who is acting, and lazy handles to docker."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from paas.settings import Settings
from paas.store import Store

if TYPE_CHECKING:
    import docker

    from paas.router.nginx import Router


@dataclass
class Context:
    """One per process (the host CLI, an SSH session, a push); `actor` is the key or user name."""

    settings: Settings
    store: Store
    actor: str | None = None
    is_admin: bool = False
    on_host: bool = False
    _extra: dict = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings, **kwargs) -> Context:
        settings.ensure_dirs()
        return cls(settings=settings, store=Store(settings.db_path), **kwargs)

    @cached_property
    def docker(self) -> docker.DockerClient:
        if "docker" not in self._extra:  # shared with every for_actor() copy
            from paas.scheduler.docker_client import client

            self._extra["docker"] = client()
        return self._extra["docker"]

    @cached_property
    def router(self) -> Router:
        if "router" not in self._extra:
            from paas.router.nginx import Router

            self._extra["router"] = Router(self.settings)
        return self._extra["router"]

    def for_actor(self, actor: str | None, is_admin: bool) -> Context:
        """A copy acting as someone else, sharing the store (one SQLite connection per process)
        and the docker and router handles (a dashboard request must not open its own)."""
        return Context(
            settings=self.settings, store=self.store, actor=actor, is_admin=is_admin, _extra=self._extra
        )
