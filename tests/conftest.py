"""What every test shares: git sees a fresh machine's configuration, not the developer's.

A developer's ~/.gitconfig (init.defaultBranch, url rewrites, hooks …) once made a test pass that
fails on a fresh machine. Every git the suite runs, directly or through `paas server`, gets an
empty global config of the suite's own and no system config. (ssh is isolated where it is run:
always with `-F <file>`, see tests/e2e/conftest.py.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

GIT_CONFIG = "# The suite's own global git config: a fresh machine has none.\n"


@pytest.fixture(scope="session", autouse=True)
def isolated_git_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point git at a global config this suite writes and drop inherited git settings."""
    path = tmp_path_factory.mktemp("git") / "gitconfig"
    path.write_text(GIT_CONFIG)
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("GIT_"):  # GIT_DIR from a hook, GIT_CONFIG_PARAMETERS, …
                mp.delenv(name)
        mp.setenv("GIT_CONFIG_GLOBAL", str(path))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        yield
