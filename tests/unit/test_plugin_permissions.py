"""Built-in plugins declare their own rules, as a third-party plugin does (issue 28): the core's
permission table holds only the core's operations, each plugin's commands, service entries and
routes join it when the plugin is imported, and a plugin turned off (PAAS_DISABLED_PLUGINS)
leaves nothing behind: its commands are unknown and its operations refused, never open.

Each table is a process's: the cases that need a table without some plugin run in a fresh
interpreter (`tests/unit/permission_table.py`, which also compares two trees entry for entry).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from paas import commands
from paas.core.context import Context
from paas.errors import PaasError
from paas.plugins import plugins
from paas.services import access
from paas.settings import Settings
from paas.store import now

ROOT = Path(__file__).resolve().parents[2]
plugins(set())  # every built-in plugin: its rules are in this process's table
NAMES = sorted(plugins(set()).info)  # a folder may hold several (datastores: postgres, redis)
CORE_AND_PLUGIN = {"metrics"}  # the core's dashboard page and API; the plugin's command too


def _python(code: str, disabled: str = "") -> Any:
    env = {**os.environ, "PAAS_DISABLED_PLUGINS": disabled}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def _table(disabled: str) -> dict[str, Any]:
    return _python("from tests.unit.permission_table import main; main()", disabled)


@pytest.fixture(scope="module")
def full() -> dict[str, Any]:
    return _table("")


def _plugin_commands(full: dict[str, Any]) -> set[str]:
    return {n for n, c in full["commands"].items() if c["from_plugin"]}


def test_the_core_table_holds_only_the_cores_operations(full: dict[str, Any]) -> None:
    """Before any plugin is imported, no plugin's command, module or route has a rule."""
    core = _python(
        "import json; from paas import commands; from paas.services import access;"
        "commands.available(True);"
        "print(json.dumps({'known': sorted({*access.OPERATIONS, *access.APP_LESS, *access.OWNED,"
        " *access.ADMIN_ONLY}), 'entries': sorted(access.ENTRIES), 'routes': sorted(access.ROUTES),"
        " 'dashboard': sorted(access.DASHBOARD_OPERATIONS)}))"
    )
    assert sorted(set(core["known"]) & _plugin_commands(full)) == sorted(CORE_AND_PLUGIN)
    assert "metrics:prometheus" not in core["known"] and core["dashboard"] == []
    assert [m for m in core["entries"] if "." in m] == []  # a plugin's is `<folder>.<module>`
    plugin_blueprints = {"metrics", "review_apps", "services"}
    assert [r for r in core["routes"] if r.split(".")[0] in plugin_blueprints] == []
    # and with every plugin loaded, each of their commands has a rule: none is admins-only by accident
    assert [n for n in _plugin_commands(full) if full["commands"][n]["rule"] is None] == []


@pytest.mark.parametrize("name", NAMES)
def test_a_disabled_plugin_leaves_no_command_and_no_open_rule(full: dict[str, Any], name: str) -> None:
    without = _table(name)
    assert name not in without["plugins"]
    mine = {
        n
        for n in _plugin_commands(full)
        if n not in without["commands"] and full["commands"][n]["from_plugin"]
    }
    assert mine, f"{name} has commands"
    assert sorted(mine & set(without["commands"])) == []
    # One folder holds both datastore kinds: it is imported for the other one, and each kind
    # declares its rules then; its commands are gone all the same (unknown, below).
    if name not in ("postgres", "redis"):
        for op in mine - CORE_AND_PLUGIN:
            assert without["operations"].get(op) is None, f"{op} keeps a rule with {name} off"
        assert [e for e in without["entries"] if e.startswith(f"{name}.") and e.count(".") == 2] == []
    # whatever routes it had are gone with its blueprint, and nothing else moved
    gone = set(full["routes"]) - set(without["routes"])
    assert all(full["routes"][r] in (*mine, access.SIGNED_IN, "metrics:prometheus") for r in gone)
    for n, c in without["commands"].items():
        assert c == full["commands"][n], n


@pytest.mark.parametrize("name", ["certs", "backup", "storage", "postgres"])
def test_a_disabled_plugins_command_is_unknown(name: str) -> None:
    """Over SSH, as a user with every permission on the app and as an admin: `unknown command`."""
    said = _python(
        "import io, json, tempfile\n"
        "from pathlib import Path\n"
        "from paas import commands\n"
        "from paas.core.context import Context\n"
        "from paas.settings import Settings\n"
        "tmp = Path(tempfile.mkdtemp())\n"
        f"settings = Settings(data_dir=tmp, disabled_plugins=frozenset({{{name!r}}}))\n"
        "out = {}\n"
        "for admin in (False, True):\n"
        "    ctx = Context.open(settings, actor='alice', is_admin=admin)\n"
        "    for argv in (['certs:add', 'shop'], ['backup:create'], ['storage:list', 'shop'],"
        " ['postgres:info', 'db']):\n"
        "        err = io.StringIO()\n"
        "        env = commands.CommandEnv(ctx=ctx, out=io.StringIO(), err=err)\n"
        "        code = commands.dispatch(list(argv), env)\n"
        "        out[f'{admin} {argv[0]}'] = [code, err.getvalue()]\n"
        "print(json.dumps(out))\n",
        name,
    )
    command = {
        "certs": "certs:add",
        "backup": "backup:create",
        "storage": "storage:list",
        "postgres": "postgres:info",
    }
    for admin in (False, True):
        code, err = said[f"{admin} {command[name]}"]
        assert (code, err) == (1, f"error: unknown command {command[name]!r}; run 'help' for the list\n")


def test_an_unknown_operation_is_refused_never_allowed(tmp_path: Path) -> None:
    """Default deny: a command nobody registered is unknown, an operation without a rule fails
    every check (KeyError), even for an admin asking the table; a plugin cannot loosen a rule."""
    ctx = Context.open(Settings(data_dir=tmp_path / "data"), actor="host", is_admin=True, on_host=True)
    ctx.store.add_user("alice", "", False, now())
    alice = Context.open(ctx.settings, actor="alice")
    err = io.StringIO()
    code = commands.dispatch(
        ["nosuch:thing", "shop"], commands.CommandEnv(ctx=alice, out=io.StringIO(), err=err)
    )
    assert (code, err.getvalue()) == (1, "error: unknown command 'nosuch:thing'; run 'help' for the list\n")
    for check in (
        lambda: access.authorize(alice, "shop", "nosuch:thing"),
        lambda: access.require_admin(ctx, "nosuch:thing"),
        lambda: access.require_user(alice, "nosuch:thing"),
        lambda: access.require_owner(ctx, None, "nosuch:thing", "a thing"),
        lambda: access.allowed(alice, "shop", "nosuch:thing"),
    ):
        with pytest.raises(KeyError):
            check()
    assert not access.known("nosuch:thing")
    for loosen in (
        lambda: access.declare("certs:add", "view"),  # a plugin's rule, as the core's, stays
        lambda: access.declare("backup:create", "user"),
        lambda: access.declare("storage:mount", "manage"),  # dropping `owned`
        lambda: access.declare("certs:report", "view"),  # dropping the dashboard
        lambda: access.declare_routes({"metrics.exposition": "metrics"}),
        lambda: access.declare_entries("paas_plugins.certs", {"service": {"add": access.INTERNAL}}),
    ):
        with pytest.raises(PaasError, match="already in the permission table"):
            loosen()
    access.declare("certs:add", "manage", dashboard=True)  # the same rule again: nothing changes


def test_declare_refuses_rules_that_mean_nothing() -> None:
    for bad in (
        lambda: access.declare("hello:x", "admin", owned=True),
        lambda: access.declare("hello:x", "user", app_optional=True),
        lambda: access.declare("hello:x", "admin", dashboard=True),
        lambda: access.declare("hello:x", "root"),
        lambda: access.declare("hello:x", None),
    ):
        with pytest.raises(PaasError):
            bad()
    assert not access.known("hello:x")
