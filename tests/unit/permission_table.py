"""The effective permission table, as JSON: every command, operation, service entry and dashboard
route with the rule it ends up with once the plugins are loaded.

Moving a rule from the core's table into a plugin must change nothing here (issue 28): run it on
two trees and compare, entry for entry. `PAAS_DISABLED_PLUGINS=a,b` turns plugins off as the
server does.

    .venv/bin/python -m tests.unit.permission_table > table.json
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from paas import commands
from paas import server as _server  # noqa: F401 (registers `paas server`, as paas.cli does)
from paas.core.context import Context
from paas.services import access
from paas.settings import Settings


def rule(operation: str) -> dict[str, Any] | None:
    """What the table says of one operation (None: it has no rule, so nobody but an admin passes
    the front ends and the service functions refuse it with a KeyError)."""
    if not access.known(operation):
        return None
    return {
        "permission": access.OPERATIONS.get(operation),
        "app_less": operation in access.APP_LESS,
        "owned": operation in access.OWNED,
        "admin_only": operation in access.ADMIN_ONLY,
        "dashboard": operation in access.DASHBOARD_OPERATIONS,
    }


def snapshot(data_dir: Path, disabled: set[str]) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir, disabled_plugins=frozenset(disabled))
    ctx = Context.open(settings, actor="host", is_admin=True, on_host=True)
    over_host = commands.available(True, ctx.plugins)
    over_ssh = commands.available(False, ctx.plugins)
    from paas.web import create_app  # after the plugins: their blueprints join the dashboard

    app = create_app(settings, ctx)
    endpoints = sorted(app.view_functions)
    operations = sorted({*access.OPERATIONS, *access.APP_LESS, *access.OWNED, *access.ADMIN_ONLY})
    return {
        "plugins": sorted(ctx.plugins.info),
        "commands": {
            name: {
                "host_only": reg.host_only,
                "over_ssh": name in over_ssh,
                "from_plugin": reg.from_plugin,
                "rule": rule(name),
            }
            for name, reg in sorted(over_host.items())
        },
        "operations": {op: rule(op) for op in operations},
        "entries": {
            f"{module}.{name}": what
            for module, names in sorted(access.ENTRIES.items())
            for name, what in sorted(names.items())
        },
        "routes": {e: access.ROUTES.get(e) for e in endpoints},
        "route_rules": {e: rule(access.ROUTES[e]) for e in endpoints if access.ROUTES.get(e)},
    }


def main() -> None:
    disabled = {p for p in os.environ.get("PAAS_DISABLED_PLUGINS", "").split(",") if p}
    with tempfile.TemporaryDirectory() as tmp:
        json.dump(snapshot(Path(tmp) / "data", disabled), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
