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

# The simulated hosts' session fixtures (swarm_cluster, cluster_paas): registered once, so every
# Swarm test file shares one set of nodes and one joined server (a module's alias of a session
# fixture would be a session fixture of its own).
pytest_plugins = ["tests.e2e.swarm_hosts"]

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


# Test files that share one xdist worker (scripts/test.sh): the Swarm files use this host's one
# swarm, its simulated hosts (a session fixture) and one registry; two workers would each make
# their own cluster on the same engine.
SHARED_WORKER = {"test_swarm.py": "swarm", "test_swarm_nodes.py": "swarm"}


@pytest.hookimpl(wrapper=True)  # marks before xdist's own hook reads them, checks after
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    """Each end-to-end file runs on one worker, so its module fixtures (servers, pebble on fixed
    ports) start once and its tests run in order; unit and web tests spread over all workers.
    xdist groups by renaming each item (`<nodeid>@<group>`): a pytest that ignores that (9.2 with
    xdist 3.8) would spread one file's tests over every worker, and the run is refused."""
    for item in items:
        path = item.path
        if path.parent.name != "e2e" or any(item.iter_markers("xdist_group")):
            continue
        item.add_marker(pytest.mark.xdist_group(SHARED_WORKER.get(path.name, path.stem)))
    yield
    if getattr(config.option, "loadgroup", False):  # set in xdist's workers under --dist loadgroup
        ungrouped = [i.nodeid for i in items if i.path.parent.name == "e2e" and "@" not in i.nodeid]
        if ungrouped:
            raise pytest.UsageError(
                f"pytest {pytest.__version__} ignores pytest-xdist's groups ({ungrouped[0]} has none):"
                " install the versions pyproject.toml names"
            )
