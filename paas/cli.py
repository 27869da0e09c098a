"""`paas` on the host: the same commands as over SSH, plus host-only ones (server, stack:build)."""

from __future__ import annotations

import os
import sys

from paas import commands
from paas import server as _server  # noqa: F401 (registers `paas server`, a host-only command)
from paas.core.context import Context
from paas.core.validation import printable
from paas.errors import PaasError
from paas.settings import Settings
from paas.terminal import TerminalStdio


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything the PaaS writes (store, logs, repos, keys, build scratch) is root's alone; the few
    # things others must read (nginx's folder, plugin pages) set their modes themselves.
    os.umask(0o077)
    try:
        ctx = Context.open(Settings.from_env(), actor="host", is_admin=True, on_host=True)
    except (PaasError, OSError) as exc:
        sys.stderr.write(f"error: {printable(str(exc))}\n")
        return 1
    stdio = TerminalStdio()
    env = commands.CommandEnv(
        ctx=ctx, out=sys.stdout, err=sys.stderr, stdin=sys.stdin.buffer, on_host=True, stdio=stdio
    )
    if argv and commands.wants_terminal(argv[0], ctx.plugins):  # run, psql, redis-cli
        with stdio.raw_mode():
            return commands.dispatch(argv, env)
    return commands.dispatch(argv, env)


if __name__ == "__main__":
    sys.exit(main())
