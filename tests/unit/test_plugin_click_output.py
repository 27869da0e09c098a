"""A plugin's command written with plain click (`click.echo`, `click.secho`, `print`) prints to
the session that ran it, even with many sessions in threads of one process."""

from __future__ import annotations

import io
import sys
import threading
import time
from pathlib import Path

import click
import pytest

from paas import commands
from paas.commands import streams
from paas.core.context import Context
from paas.plugins import Plugins, hookimpl
from paas.settings import Settings


@click.command("plain:say")
@click.argument("word")
@click.option("--times", default=1)
def say(word: str, times: int) -> None:
    """Says a word, slowly: two sessions saying theirs at once interleave."""
    for i in range(times):
        click.echo(f"{word} {i}")
        time.sleep(0.001)
    click.secho(f"{word} done", fg="green", bold=True)
    click.echo(f"{word} to stderr", err=True)
    print(f"{word} printed")
    click.echo(word.encode())


@click.command("plain:fail")
@click.argument("how")
def fail(how: str) -> None:
    """Ends in each of the ways a click command can."""
    click.echo("before")
    if how == "exit":
        raise click.exceptions.Exit(3)
    if how == "abort":
        raise click.Abort()
    if how == "usage":
        raise click.UsageError("no such thing")
    if how == "sys-exit":
        sys.exit(4)
    if how == "ctx-exit":
        click.get_current_context().exit(5)


class ClickPlugin:
    @hookimpl
    def paas_commands(self) -> list[click.Command]:
        return [say, fail]


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    pm = Plugins(builtin_dir=tmp_path / "none")
    pm._register(ClickPlugin(), "plain", "1", "test")
    monkeypatch.setattr(Context, "plugins", property(lambda self: pm))
    return Context.open(Settings(data_dir=tmp_path / "data"), is_admin=True)


def run(ctx: Context, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(ctx=ctx, out=out, err=err, disconnected=lambda: True)
    return commands.dispatch(list(argv), env), out.getvalue(), err.getvalue()


def test_click_echo_reaches_the_session_not_the_process(ctx: Context, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(ctx, "plain:say", "hi", "--times", "2")
    assert code == 0
    assert out == "hi 0\nhi 1\nhi done\nhi printed\nhi\n"  # colours stripped: not a terminal
    assert err == "hi to stderr\n"
    assert capsys.readouterr() == ("", "")
    print("after")  # outside a command the process's own streams are used again
    assert capsys.readouterr().out == "after\n"


@pytest.mark.parametrize(
    ("how", "code", "message"),
    [
        ("exit", 3, ""),
        ("ctx-exit", 5, ""),
        ("sys-exit", 4, ""),
        ("abort", 1, "error: aborted\n"),
        ("usage", 1, "error: no such thing\n"),
        ("none", 0, ""),
    ],
)
def test_click_endings_are_an_exit_status_and_one_line(
    ctx: Context, how: str, code: int, message: str
) -> None:
    got, out, err = run(ctx, "plain:fail", how)
    assert (got, out) == (code, "before\n")
    assert err.startswith(message) and "Traceback" not in err
    if how == "usage":
        assert err.splitlines()[1].startswith("Usage: plain:fail")


def test_concurrent_sessions_each_get_only_their_own_output(ctx: Context) -> None:
    results: dict[str, tuple[int, str, str]] = {}
    start = threading.Barrier(8)

    def session(word: str) -> None:
        start.wait()
        results[word] = run(ctx, "plain:say", word, "--times", "200")

    threads = [threading.Thread(target=session, args=(f"s{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for word, (code, out, err) in results.items():
        assert code == 0
        expected = [f"{word} {i}" for i in range(200)] + [f"{word} done", f"{word} printed", word]
        assert out.splitlines() == expected
        assert err == f"{word} to stderr\n"


def test_the_stand_in_passes_through_outside_a_command() -> None:
    real = io.StringIO()
    stand_in = streams.SessionStream("out", real)
    stand_in.write("plain\n")
    mine = io.StringIO()
    with streams.session_streams(mine, mine):
        assert stand_in.bound() is mine
        stand_in.write("bound\n")
        stand_in.buffer.write("bytes é\n".encode())
    assert (real.getvalue(), mine.getvalue()) == ("plain\n", "bound\nbytes é\n")
    with pytest.raises(TypeError):
        stand_in.write(b"x")  # type: ignore[arg-type]


@click.command("plain:ask")
def ask() -> None:
    """Asks over the session: click.prompt reads what the user sends."""
    name = click.prompt("name")
    click.echo(f"hello {name}")


def test_click_prompt_reads_the_sessions_input_or_aborts(tmp_path: Path, monkeypatch) -> None:
    pm = Plugins(builtin_dir=tmp_path / "none")
    pm._register(type("Ask", (), {"paas_commands": hookimpl(lambda self: [ask])})(), "ask", "1", "t")
    monkeypatch.setattr(Context, "plugins", property(lambda self: pm))
    ctx = Context.open(Settings(data_dir=tmp_path / "data"), is_admin=True)
    for stdin, code, said in [(io.BytesIO(b"bob\nrest"), 0, "name: hello bob\n"), (None, 1, "name: ")]:
        out, err = io.StringIO(), io.StringIO()
        env = commands.CommandEnv(ctx=ctx, out=out, err=err, stdin=stdin)
        assert commands.dispatch(["plain:ask"], env) == code
        assert out.getvalue() == said
    assert stdin is None and err.getvalue().endswith("error: aborted\n")
