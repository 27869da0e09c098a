"""docs/architecture.md says what the code says: its command and hook tables are generated from
the command registry and the hook specifications, and this test fails when they drift.

Refresh them with `.venv/bin/python -m tests.unit.test_architecture_doc`.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

from paas import commands
from paas import server as _server  # noqa: F401 (registers `paas server`, as paas.cli does)
from paas.plugins import HookSpecs, plugins

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def _where(fn: object) -> str:
    """The file a command's callback is written in, from the repository's root."""
    module = getattr(fn, "__module__", "")
    if module.startswith("paas_plugins."):
        return "plugins/" + module.removeprefix("paas_plugins.").replace(".", "/") + ".py"
    return module.replace(".", "/") + ".py"


def commands_table() -> str:
    registered = commands.available(True, plugins(set()))
    by_file: dict[str, list[str]] = {}
    for name, reg in registered.items():
        target = reg.command.callback
        inner = getattr(target, "__wrapped__", target)
        label = f"`{name}`" + (" (host)" if reg.host_only else "")
        by_file.setdefault(_where(inner), []).append(label)
    rows = ["| file | commands |", "|---|---|"]
    rows += [f"| `{f}` | {', '.join(sorted(names))} |" for f, names in sorted(by_file.items())]
    return "\n".join(rows)


def hooks_table() -> str:
    rows = ["| hook | when, and what it may do |", "|---|---|"]
    for name, fn in vars(HookSpecs).items():
        if not name.startswith("paas_"):
            continue
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        doc = " ".join((fn.__doc__ or "").split())
        rows.append(f"| `{name}({', '.join(params)})` | {doc.replace('|', '/')} |")
    return "\n".join(rows)


def render(text: str) -> str:
    for key, table in (("commands", commands_table()), ("hooks", hooks_table())):
        pattern = re.compile(rf"(<!-- {key}:begin[^>]*-->\n).*?(<!-- {key}:end -->)", re.S)
        assert pattern.search(text), f"docs/architecture.md lost its {key} markers"
        text = pattern.sub(lambda m, t=table: f"{m.group(1)}{t}\n{m.group(2)}", text)
    return text


def test_the_architecture_document_lists_every_command_and_hook() -> None:
    text = DOC.read_text()
    assert text == render(text), "run `.venv/bin/python -m tests.unit.test_architecture_doc`"


def test_every_layer_of_the_layer_test_is_in_the_document() -> None:
    from tests.unit.test_layers import RANKS

    text = DOC.read_text()
    missing = [prefix for prefix, _rank in RANKS if f"`{prefix}`" not in text]
    assert not missing, f"docs/architecture.md's Layers table lacks {missing}"


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text()))
    sys.exit(0)
