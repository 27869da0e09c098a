"""`<namespace>:set` and `<namespace>:report` for every namespace of Dokku's property model.

One parser and one renderer for all of them (the rules are in paas/services/properties.py and in
the service that declares each namespace). The report prints as Dokku prints it, because scripts
read it: `=====> <app> <namespace> information`, then one `Key words:  value` line per flag;
`--<namespace>-<key>` prints one value alone; `--format json` gives every flag both with and
without the namespace prefix (`checks-wait-to-retire` and `wait-to-retire`).
"""

from __future__ import annotations

import click

from paas.commands import CommandEnv, command

# The services that declare namespaces: importing one registers its namespace.
from paas.services import builders, checks, git, moves, properties, routing, schedulers  # noqa: F401
from paas.services.properties import GLOBAL

NO_APPS = "You haven't deployed any applications yet"
# `scheduler:set <app> swarm` (before Dokku's form) sets `selected`.
SHORTHAND = {"scheduler": "selected"}
MIN_WIDTH = 31  # Dokku pads `Key:` to at least this many characters


def parse_set(ns: str, args: tuple[str, ...]) -> tuple[str | None, str, str | None]:
    """`[--global] [<app>] <key> [<value>]` -> (app or None for global, key, value or None).
    Words after the key are one value (`proxy-buffers 16 16k` over SSH arrives as two words)."""
    words = list(args)
    app: str | None = None
    if words[:1] == [GLOBAL]:
        words.pop(0)
    elif words:
        app = words.pop(0)
    if not words:
        what = "a property" if app is None else "an app and a property"
        raise click.UsageError(f"specify {what}: {ns}:set [--global|<app>] <key> [<value>]")
    key = words.pop(0)
    known = {p.key for p in properties.namespace(ns).props}
    if ns in SHORTHAND and app is not None and not words and key not in known:
        return app, SHORTHAND[ns], key
    return app, key, (" ".join(words) if words else None)


def parse_report(ns: str, args: tuple[str, ...]) -> tuple[str | None, bool, str, str | None]:
    """`[<app>|--global] [--format text|json] [--<flag>]` -> (app, global, format, flag)."""
    app, is_global, fmt, info = None, False, "text", None
    words = list(args)
    while words:
        word = words.pop(0)
        if word == GLOBAL:
            is_global = True
        elif word == "--format":
            if not words or words[0] not in ("text", "json", "stdout"):
                raise click.UsageError("--format takes text or json")
            fmt = "json" if words.pop(0) == "json" else "text"
        elif word.startswith("--"):
            if info is not None:
                raise click.UsageError(f"{ns}:report command allows only a single flag")
            info = word
        elif app is None:
            app = word
        else:
            raise click.UsageError(f"{ns}:report takes one app")
    if is_global and app is not None:
        raise click.UsageError("give an app or --global, not both")
    if info is not None and fmt == "json":
        raise click.UsageError("--format flag cannot be specified when specifying an info flag")
    return app, is_global, fmt, info


def label(flag: str) -> str:
    words = flag.replace("-", " ").replace(".", " ")
    return words[:1].upper() + words[1:]


def render(env: CommandEnv, ns: str, subject: str, data: dict[str, str], info: str | None) -> int:
    """One report, as text (or the one value of `info`)."""
    if info is not None:
        if info.removeprefix("--") not in data:
            valid = ", ".join(sorted(f"--{k}" for k in data))
            env.err.write(f" !     Invalid flag passed, valid flags: {valid}\n")
            return 1
        env.out.write(data[info.removeprefix("--")] + "\n")
        return 0
    width = max([MIN_WIDTH, *(len(k) + 2 for k in data)])
    env.echo(f"=====> {subject} {ns} information")
    for key in sorted(data):
        env.echo(f"       {(label(key) + ':').ljust(width)}{data[key]}")
    return 0


def as_json(ns: str, data: dict[str, str]) -> dict[str, str]:
    """Both spellings of every key: Dokku's newer stripped one and the prefixed one."""
    out = dict(data)
    for key, value in data.items():
        out.setdefault(key.removeprefix(f"{ns}-"), value)
    return dict(sorted(out.items()))


def _set_command(ns: str) -> None:
    @command(
        f"{ns}:set",
        f"Set one {ns} property of an app, or server-wide with --global (no value unsets it).",
        context_settings={"ignore_unknown_options": True},
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def set_(env: CommandEnv, args: tuple[str, ...]) -> None:
        app, key, value = parse_set(ns, args)
        properties.set_value(env.ctx, ns, app, key, value, env.progress())
        if value is None:
            env.echo(f"-----> Unsetting {key}")
        else:
            env.echo(f"-----> Setting {key} to {value}")


def _report_command(ns: str) -> None:
    @command(
        f"{ns}:report",
        f"Show the {ns} properties of an app, of every app, or server-wide ones (--global).",
        context_settings={"ignore_unknown_options": True},
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def report(env: CommandEnv, args: tuple[str, ...]) -> int:
        app, is_global, fmt, info = parse_report(ns, args)
        if is_global or app is not None:
            data = properties.report(env.ctx, ns, app)
            if fmt == "json":
                env.json(as_json(ns, data))
                return 0
            return render(env, ns, app or "global", data, info)
        every = properties.report_all(env.ctx, ns)
        if not every:
            env.echo(f" !     {NO_APPS}")
            return 0
        if fmt == "json":
            env.json({name: as_json(ns, data) for name, data in every.items()})
            return 0
        status = 0
        for name, data in every.items():
            status = render(env, ns, name, data, info) or status
        return status


for _name, _ns in sorted(properties.namespaces().items()):
    if _ns.props:
        _set_command(_name)
    _report_command(_name)
