"""The import graph: no cycles, and dependencies point one way (DESIGN.md).

Front ends (commands, git_receiver, web, cli, server) and plugins -> services -> buildpacks,
scheduler, router -> core, plugins.py -> store -> errors, settings. Every import counts, function-local
ones too (they must not dodge a cycle); only `if TYPE_CHECKING:` blocks are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RANKS = [
    ("paas.errors", 0),
    ("paas.settings", 0),
    ("paas.terminal", 0),
    ("paas.store", 1),
    ("paas.core", 2),
    ("paas.plugins", 2),
    ("paas.buildpacks", 3),
    ("paas.scheduler", 3),
    ("paas.router", 3),
    ("paas.services", 4),
    ("paas.commands", 5),
    ("paas.git_receiver", 5),
    ("paas.web", 5),
    ("paas.cli", 5),
    ("paas.server", 5),
    ("paas.plugin_api", 5),
    ("paas_plugins", 5),
]


def _rank(module: str) -> int:
    for prefix, rank in RANKS:
        if module == prefix or module.startswith(prefix + "."):
            return rank
    raise AssertionError(f"{module} has no layer: add it to RANKS")


def _modules() -> dict[str, Path]:
    found = {}
    for base, package in ((ROOT / "paas", "paas"), (ROOT / "plugins", "paas_plugins")):
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if "tests" in parts or "fixtures" in parts:
                continue
            found[".".join([package, *parts])] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, module: str, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in out if m in known and m != module}


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {m: _imports(p, m, known) for m, p in known.items()}


def test_every_import_points_down_or_sideways() -> None:
    wrong = [
        f"{m} (layer {_rank(m)}) imports {d} (layer {_rank(d)})"
        for m, deps in _graph().items()
        for d in deps
        if _rank(d) > _rank(m)
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[str] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                walk(dep, stack)
        stack.pop()
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m, [])
    assert not cycles, "\n".join(cycles)


def _package(module: str) -> str:
    """The layer's package a module belongs to (`paas.services`, `paas.server`, `paas_plugins`)."""
    for prefix, _rank_of in RANKS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    raise AssertionError(module)


def test_no_two_packages_of_one_layer_import_each_other() -> None:
    """Sideways imports go one way: buildpacks and scheduler both need the networks, so those
    live in paas.core, below both (they imported each other before)."""
    edges = {
        (_package(m), _package(d))
        for m, deps in _graph().items()
        for d in deps
        if _rank(d) == _rank(m) and _package(d) != _package(m)
    }
    both = sorted(f"{a} <-> {b}" for a, b in edges if (b, a) in edges and a < b)
    assert not both, "\n".join(both)


def test_no_cycle_through_the_command_registry() -> None:
    """`paas.commands` imports its command modules by name (importlib), which the cycle test
    cannot see: none of them may reach, through modules outside the package, one that imports
    `paas.commands` again (`paas server` did: commands.server -> server -> commands)."""
    import paas.commands

    graph = _graph()
    loops = []
    for name in paas.commands.COMMAND_MODULES:
        start = f"paas.commands.{name}"
        seen: set[str] = set()
        todo = [d for d in graph[start] if not d.startswith("paas.commands")]
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            if any(d == "paas.commands" or d.startswith("paas.commands.") for d in graph[m]):
                loops.append(f"{start} -> ... -> {m} -> paas.commands")
            todo.extend(d for d in graph[m] if not d.startswith("paas.commands"))
    assert not loops, "\n".join(sorted(loops))


def test_labels_are_named_in_one_module() -> None:
    """Container labels are spelled only in paas/core/names.py."""
    offenders = []
    for m, path in _modules().items():
        if m == "paas.core.names":
            continue
        text = path.read_text()
        for label in (
            '"paas.app"',
            '"paas.role"',
            '"paas.instance"',
            '"paas.release"',
            '"paas.process_type"',
        ):
            if label in text:
                offenders.append(f"{m}: {label}")
    assert not offenders, offenders


# Issue 28: services reach a scheduler through `paas.scheduler.interface` (services.schedulers
# picks one). What still reaches past it, listed so the list can only shrink: a module that stops
# leaking must be taken off, a new leak fails here. Containers that run on this host whatever the
# app's scheduler (one-offs, cron runs, the release phase, build leftovers) come from
# `paas.scheduler.host_containers`, which is neither scheduler. The core has one scheduler
# (docker-local); swarm is a plugin's (plugins/swarm), which the core never imports.
CONCRETE = {"paas.scheduler.docker_local"}
FACTORY = "paas.services.schedulers"
STILL_LEAKING: dict[str, set[str]] = {}
BRANCHING_ON_A_SCHEDULER: dict[str, int] = {}  # isinstance(x, Swarm | DockerLocal): none left


def test_services_reach_schedulers_through_the_interface() -> None:
    graph = _graph()
    leaking = {
        m: deps & CONCRETE
        for m, deps in graph.items()
        if m.startswith(("paas.services.", "paas_plugins.")) and m != FACTORY and deps & CONCRETE
    }
    assert leaking == STILL_LEAKING


def test_no_service_branches_on_the_concrete_scheduler() -> None:
    found = {}
    for module, path in _modules().items():
        if not module.startswith(("paas.services.", "paas_plugins.", "paas.commands.", "paas.web.")):
            continue
        count = sum(
            1
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "isinstance"
            and len(node.args) == 2
            and any(
                isinstance(n, ast.Name | ast.Attribute)
                and getattr(n, "id", getattr(n, "attr", "")) in ("Swarm", "DockerLocal")
                for n in ast.walk(node.args[1])
            )
        )
        if count:
            found[module] = count
    assert found == BRANCHING_ON_A_SCHEDULER


def test_the_core_names_no_plugin_scheduler() -> None:
    """What differs between schedulers is behind the interface (`network_driver`, `prepare`,
    ...): no core module but the names themselves says `swarm`'s name or imports its plugin."""
    found = []
    for module, path in _modules().items():
        if not module.startswith("paas.") or module == "paas.core.names":
            continue
        text = path.read_text()
        for needle in ("SCHEDULER_SWARM", "paas_plugins.swarm", '"swarm"'):
            if needle in text:
                found.append(f"{module}: {needle}")
    assert found == []


# Issue 28: a built-in plugin uses the core through `paas.plugin_api`, as a third-party one does.
# What each still reaches into beside it is listed, so the list can only shrink: a reach that
# goes must be taken off, a new one fails here (add it to the API if every plugin needs it, or
# give the plugin a hook). storage is not moved yet (its quota work is under way).
PLUGIN_REACHES = {
    "backup": {
        "paas.core.names",
        "paas.services.apps",
        "paas.services.locks",  # AppLock: every app's lock at once, for a restore
        "paas.services.push",  # redeploy_current: an app rebuilt from a backup
        "paas.services.routing",
        "paas.store.snapshot",
    },
    "certs": {"paas.core.archive", "paas.services.lookup", "paas.services.routing"},
    "cron": {
        "paas.buildpacks.builder",
        "paas.core.container",
        "paas.core.names",
        "paas.core.validation",
        "paas.scheduler.host_containers",  # its runs are containers on this host, on either scheduler
        "paas.services.containers",
        "paas.store",
    },
    "datastores": {
        "paas.buildpacks.service_images",
        "paas.core.container",
        "paas.core.engine",
        "paas.core.names",
        "paas.core.networks",
        "paas.core.validation",
        "paas.services.config",
        "paas.services.containers",
        "paas.services.quotas",
    },
    "maintenance": {
        "paas.buildpacks.source",
        "paas.core.names",
        "paas.core.validation",
        "paas.services.lookup",
        "paas.services.routing",
    },
    "metrics": {
        "paas.core.validation",
        "paas.services.metrics",
        "paas.services.processes",
        "paas.services.releases",
    },
    "notifications": set(),
    "review_apps": {
        "paas.buildpacks.source",
        "paas.core.manifest",
        "paas.core.validation",
        "paas.services.apps",
        "paas.services.locks",
        "paas.services.lookup",
        "paas.services.push",
        "paas.services.release_phase",
        "paas.store",
        "paas.web.auth",  # flash: its page's message, where the dashboard keeps them
    },
    "swarm": {
        "paas.buildpacks.service_images",  # the registry's image (registry.py)
        "paas.buildpacks.stack",  # the stack's image: pushed to the registry first, pulled by nodes
        "paas.core.container",
        "paas.core.names",
        "paas.core.output",
        "paas.core.validation",
        "paas.scheduler.host_containers",  # the hardening every container gets (run_user, sources)
        "paas.scheduler.interface",  # what a scheduler is
        "paas.scheduler.trouble",  # crash loops and OOM kills, told alike on either scheduler
        "paas.services.schedulers",  # stop_timeout: an app's ps:set stop-timeout-seconds
        "paas.settings",  # the core's checks of a port, a port range, an address, networks
    },
    "storage": {
        "paas.commands",
        "paas.core.backup",
        "paas.core.container",
        "paas.core.context",
        "paas.core.names",
        "paas.core.output",
        "paas.errors",
        "paas.plugins",
        "paas.services.access",
        "paas.services.locks",
        "paas.store",
    },
}


def test_built_in_plugins_reach_the_core_through_the_plugin_api() -> None:
    reaches: dict[str, set[str]] = {}
    for module, deps in _graph().items():
        if module.startswith("paas_plugins."):
            folder = module.split(".")[1]
            reaches.setdefault(folder, set()).update(
                d for d in deps if d.startswith("paas.") and d != "paas.plugin_api"
            )
    assert reaches == PLUGIN_REACHES
