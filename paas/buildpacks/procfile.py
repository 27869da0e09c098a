"""Procfile parsing: `<process type>: <command>` per line, as Heroku reads it."""

from __future__ import annotations

import re

from paas.core import validation
from paas.errors import PaasError

_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+?)\s*$")


def parse_procfile(text: str) -> dict[str, str]:
    processes: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise PaasError(f"Procfile line {number}: expected '<process type>: <command>'")
        ptype, command = m.group(1), m.group(2)
        try:
            validation.process_type(ptype)
        except PaasError as exc:
            raise PaasError(f"Procfile line {number}: {exc}") from None
        processes[ptype] = command
    return processes
