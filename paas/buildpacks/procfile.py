"""Procfile parsing: `<process type>: <command>` per line, as Heroku reads it."""

from __future__ import annotations

import re

from paas.core import validation
from paas.errors import PaasError

_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+?)\s*$")


def strip_comment(command: str) -> str:
    """The command without a trailing `# comment` (Dokku's procfile-util drops it): a `#` that
    starts a word outside quotes, as a shell reads it; `echo "#1"` and `a#b` keep theirs."""
    quote = ""
    escaped = False
    for i, c in enumerate(command):
        if escaped:
            escaped = False
        elif c == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or command[i - 1] in " \t"):
            return command[:i].rstrip()
    return command


def parse_procfile(text: str) -> dict[str, str]:
    processes: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise PaasError(f"Procfile line {number}: expected '<process type>: <command>'")
        ptype, command = m.group(1), strip_comment(m.group(2))
        if not command:
            raise PaasError(f"Procfile line {number}: {ptype} has no command")
        try:
            validation.process_type(ptype)
        except PaasError as exc:
            raise PaasError(f"Procfile line {number}: {exc}") from None
        processes[ptype] = command
    return processes
