"""The command layer: one set of commands for `ssh paas CMD` and `paas CMD` on the host.

Commands only parse arguments and render results; every rule lives in `paas.services`.
A command's code is in the module named for its namespace (`apps:create` -> `commands/apps.py`).
Click is used for parsing, but never writes to the process's own stdout/stderr: an SSH session
runs in a thread of the server, so all output goes through the session's `CommandEnv`. A plugin's
command may still use `click.echo`/`print`: while it runs, its thread's `sys.stdout`/`sys.stderr`
are the session's (`paas.commands.streams`).
"""

from __future__ import annotations

import importlib
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import click

from paas.commands import streams
from paas.core.context import Context
from paas.core.output import BuildLog, TerminalWriter, json_text
from paas.errors import PaasError, PermissionDenied
from paas.plugins import Plugins
from paas.services import access as access_service

log = logging.getLogger("paas.commands")


HEADERS = ("=====> ", "-----> ")
GLOBAL_FLAGS = ("--quiet", "--force", "--trace")  # Dokku's, before the command name


@dataclass
class CommandEnv:
    """Where a command reads and writes, and on whose behalf it acts."""

    ctx: Context
    out: IO[str]
    err: IO[str]
    stdin: IO[bytes] | None = None
    on_host: bool = False
    pty: Any = None
    stdio: Any = None  # a paas.commands.stdio.Stdio, for interactive commands
    raw_command: str | None = None  # the SSH command line as sent, for `run`
    disconnected: Callable[[], bool] = lambda: False
    extras: dict = field(default_factory=dict)

    quiet: bool = False  # Dokku's --quiet: no `=====>`/`----->` header lines

    def __post_init__(self) -> None:
        # Every front end's text output (SSH and the host CLI) passes here: control characters
        # from users and apps reach the terminal escaped. `run` and the like write raw bytes to
        # `stdio`, which is the user's own terminal session.
        if not isinstance(self.out, TerminalWriter):
            self.out = TerminalWriter(self.out)
        if not isinstance(self.err, TerminalWriter):
            self.err = TerminalWriter(self.err)

    def echo(self, text: str = "") -> None:
        if self.quiet and text.startswith(HEADERS):
            return
        self.out.write(text + "\n")
        self.out.flush()

    def progress(self) -> BuildLog:
        """A Heroku-style log that streams to this command's output."""

        def sink(line: str) -> None:
            if self.quiet and line.startswith(HEADERS):
                return
            self.out.write(line)
            self.out.flush()

        return BuildLog(sink)

    def json(self, data: object) -> None:
        self.echo(json_text(data))


@dataclass(frozen=True)
class Registered:
    command: click.Command
    host_only: bool
    alias_of: str | None = None
    from_plugin: bool = False


_REGISTRY: dict[str, Registered] = {}


def define(
    name: str,
    help: str,
    host_only: bool = False,
    permission: str | None = None,
    owned: bool = False,
    terminal: bool = False,
    app_optional: bool = False,
    dashboard: bool = False,
    **kwargs: Any,
) -> Callable:
    """A click command under a Dokku-style name like `maintenance:on`, called with the session's
    `CommandEnv` first; plugins return these from `paas_commands`. `host_only` ones are refused
    over SSH. `permission` (view, deploy, operate, manage, owner) is what a plugin's command
    needs on the app named by its `app` argument, `user` for one that names no app and shows or
    acts on the actor's own things only, or `admin` for one only admins may run; `owned` says
    the command names a thing of the actor's own (a service: its service function checks
    `access.require_owner`), with or without a permission on an app. With a permission on an
    app, `app_optional` says the app may be left out (then it acts on the actor's own things)
    and `dashboard` that the app may be `paas`, the dashboard (admins only; the certificates').
    Without a rule only admins may run it. The rule joins the permission table
    (`access.declare`) with `declare_permissions` when the plugin is imported, or when its
    commands are first listed. `terminal` says it attaches the user's terminal to a program
    (`run`, psql): on the host the terminal is put in raw mode while it runs (over SSH,
    `ssh -t` does that)."""

    def wrap(fn: Callable) -> click.Command:
        cmd = click.command(name, help=help, add_help_option=False, **kwargs)(click.pass_obj(fn))
        cmd.paas_host_only = host_only  # type: ignore[attr-defined]
        cmd.paas_permission = permission  # type: ignore[attr-defined]
        cmd.paas_owned = owned  # type: ignore[attr-defined]
        cmd.paas_terminal = terminal  # type: ignore[attr-defined]
        cmd.paas_app_optional = app_optional  # type: ignore[attr-defined]
        cmd.paas_dashboard = dashboard  # type: ignore[attr-defined]
        return cmd

    return wrap


def _declare(cmd: click.Command) -> None:
    permission = getattr(cmd, "paas_permission", None)
    owned = bool(getattr(cmd, "paas_owned", False))
    if permission is not None or owned:
        access_service.declare(
            cmd.name or "",
            permission,
            owned,
            app_optional=bool(getattr(cmd, "paas_app_optional", False)),
            dashboard=bool(getattr(cmd, "paas_dashboard", False)),
        )


def declare_permissions(cmds: list[click.Command]) -> None:
    """Put the rules `define` gave these commands into the permission table now: called when the
    plugin is imported, so its service functions (its dashboard pages, its hooks, processes that
    never list commands) find them, and a plugin turned off leaves none behind. Raises
    PaasError for a rule that conflicts with the table."""
    for cmd in cmds:
        _declare(cmd)


def command(name: str, help: str, host_only: bool = False, **kwargs: Any) -> Callable:
    """Define and register one of the core's commands."""

    def wrap(fn: Callable) -> click.Command:
        cmd = define(name, help, host_only, **kwargs)(fn)
        _REGISTRY[name] = Registered(cmd, host_only)
        return cmd

    return wrap


def alias(name: str, target: str) -> None:
    """Another name for a command (`ps:scale` for `apps:scale`)."""
    _REGISTRY[name] = Registered(_REGISTRY[target].command, _REGISTRY[target].host_only, target)


FORMAT_OPTION = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="Output format."
)


COMMAND_MODULES = (
    "access",
    "apps",
    "buildpacks",
    "checks",
    "config",
    "doctor",
    "domains",
    "enter",
    "events",
    "git",
    "help",
    "keys",
    "logs",
    "plugins",
    "properties",
    "ps",
    "quota",
    "releases",
    "repo",
    "report",
    "resource",
    "run",
    "server",
    "tokens",
    "urls",
    "users",
)


def _load() -> None:
    """Import the command modules; importing registers their commands."""
    for module in COMMAND_MODULES:
        importlib.import_module(f"paas.commands.{module}")


def _from_plugins(plugins: Plugins) -> dict[str, Registered]:
    """The plugins' commands, once per set of plugins; a name the core has is refused."""
    if plugins not in _PLUGIN_COMMANDS:
        found: dict[str, Registered] = {}
        for cmd in plugins.commands():
            name = cmd.name or ""
            if name in _REGISTRY or name in found:
                log.error("plugin command %r ignored: the name is taken", name)
                continue
            try:
                _declare(cmd)
            except PaasError as exc:
                log.error("plugin command %r ignored: %s", name, exc)
                continue
            found[name] = Registered(cmd, bool(getattr(cmd, "paas_host_only", False)), from_plugin=True)
        _PLUGIN_COMMANDS[plugins] = found
    return _PLUGIN_COMMANDS[plugins]


_PLUGIN_COMMANDS: dict[Plugins, dict[str, Registered]] = {}


def wants_terminal(name: str, plugins: Plugins | None = None) -> bool:
    """Whether the command of that name attaches the user's terminal (`define(terminal=True)`)."""
    reg = available(True, plugins).get(name)
    return reg is not None and bool(getattr(reg.command, "paas_terminal", False))


def available(on_host: bool, plugins: Plugins | None = None) -> dict[str, Registered]:
    _load()
    every = {**_REGISTRY, **(_from_plugins(plugins) if plugins is not None else {})}
    return {n: r for n, r in every.items() if on_host or not r.host_only}


def _authorize(env: CommandEnv, name: str, reg: Registered, params: dict[str, Any]) -> None:
    """An early look at the permission table for the app a command names, before the command
    writes anything; the service function it calls checks its whole rule (admins only, owners,
    the dashboard's certificate) again. A third-party plugin's command the table does not know
    is for admins only: its code is not ours to check."""
    app = params.get("app", params.get("old"))
    if name in access_service.OPERATIONS:
        if isinstance(app, str) and not (
            app == access_service.DASHBOARD_SUBJECT and name in access_service.DASHBOARD_OPERATIONS
        ):
            access_service.authorize(env.ctx, app, name)
    elif reg.from_plugin and not access_service.known(name) and not access_service.is_admin(env.ctx):
        raise PermissionDenied(f"only an admin may run {name} (its plugin declares no permission)")


def dispatch(argv: list[str], env: CommandEnv) -> int:
    """Run one command line; return its exit status. Never raises, never prints a traceback."""
    commands = available(env.on_host, env.ctx.plugins)
    while argv and argv[0] in GLOBAL_FLAGS:  # `dokku --quiet apps:list`, `--force apps:destroy x`
        flag = argv.pop(0)
        if flag == "--quiet":
            env.quiet = True
        elif flag == "--force":
            env.extras["force"] = True
    if not argv or argv[0] in ("--help", "-h"):
        argv = ["help"]
    if argv[0] in ("-v", "--version"):
        argv = ["version"]
    name, args = argv[0], argv[1:]
    if name not in ("run", "run:detached", "enter") and "--quiet" in args:
        env.quiet = True
        args = [a for a in args if a != "--quiet"]
    reg = commands.get(name)
    if reg is None:
        if name.endswith(":help"):
            return dispatch(["help", name[: -len(":help")]], env)
        if ":" not in name and any(n.startswith(name + ":") for n in commands):  # `dokku checks`
            return dispatch(["help", name], env)
        env.err.write(f"error: unknown command {name!r}; run 'help' for the list\n")
        return 1
    cmd = reg.command
    if args[:1] in (["--help"], ["-h"]) or (name != "run" and ("--help" in args or "-h" in args)):
        with click.Context(cmd, info_name=name) as cctx:
            env.echo(cmd.get_help(cctx))
        return 0
    try:
        with cmd.make_context(name, list(args), obj=env) as cctx:
            _authorize(env, name, reg, cctx.params)
            if reg.from_plugin:  # plain click: click.echo, secho(err=True), prompt, print
                with streams.session_streams(env.out, env.err, env.stdin):
                    result = cmd.invoke(cctx)
            else:
                result = cmd.invoke(cctx)
        return int(result) if isinstance(result, int) else 0  # a plain click command may return anything
    except click.UsageError as exc:
        usage = exc.ctx.get_usage() if exc.ctx else f"Usage: {name} ..."
        env.err.write(f"error: {exc.format_message()}\n{usage}\n")
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        env.err.write(f"error: {exc.format_message()}\n")
        return 1
    except PaasError as exc:
        env.err.write(f"error: {exc}\n")
        return 1
    except (click.Abort, KeyboardInterrupt):
        env.err.write("error: aborted\n")
        return 1
    except SystemExit as exc:  # sys.exit() in a plugin's command ends the command, not the server
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        env.err.write(f"error: {exc.code}\n")
        return 1
    except BrokenPipeError:
        return 1
    except Exception:  # a bug: keep the details in the server log, give the user one line
        # The command's name only: its arguments may hold secrets (config:set K=secret).
        log.error("command %r failed:\n%s", name, traceback.format_exc())
        env.err.write("error: internal error while running the command (see the server log)\n")
        return 1
