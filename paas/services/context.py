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
        from paas.scheduler.docker_client import client

        return client()

    @cached_property
    def router(self) -> Router:
        from paas.router.nginx import Router

        return Router(self.settings)

    def for_actor(self, actor: str | None, is_admin: bool) -> Context:
        """A copy acting as someone else, sharing the store (one SQLite connection per process)."""
        return Context(settings=self.settings, store=self.store, actor=actor, is_admin=is_admin)
