"""A deploy's garbage collection on a fake engine: leftovers of the app's builds go even while
another deploy's prune runs (the engine refuses a second prune at the same moment; four
workers deploying at once left a dangling image behind in a full run). The real engine:
tests/e2e/test_resilience.py's hundred deploys."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import docker
import pytest

from paas.core.context import Context
from paas.services import gc
from paas.settings import Settings


class FakeImages:
    def __init__(self) -> None:
        self.dangling = [SimpleNamespace(id="sha256:leftover", tags=[], attrs={})]
        self.removed: list[str] = []

    def list(self, name: str | None = None, filters: dict | None = None) -> list:
        return list(self.dangling) if filters and filters.get("dangling") else []

    def remove(self, image: str, noprune: bool = False) -> None:
        self.removed.append(image)
        self.dangling = [i for i in self.dangling if i.id != image]

    def prune(self, filters: dict) -> dict:
        raise docker.errors.APIError("a prune operation is already running")


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    ctx = Context.open(Settings(data_dir=tmp_path / "data"), actor="test", is_admin=True)
    ctx._extra["docker"] = SimpleNamespace(images=FakeImages())
    return ctx


def test_leftovers_go_while_another_prune_runs(ctx: Context) -> None:
    app = ctx.store.create_app("shop")
    assert "sha256:leftover" in gc.collect(ctx, app)
    assert ctx.docker.images.dangling == []
