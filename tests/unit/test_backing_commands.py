"""The postgres:* and redis:* commands parse and render only: checked with the rules faked."""

from __future__ import annotations

import importlib
import io
import json
from pathlib import Path

import pytest

from paas import commands
from paas.core.context import Context
from paas.errors import NotFound
from paas.plugins import plugins
from paas.settings import Settings

plugins(set())  # the built-in plugins, importable as paas_plugins.<name>
backing = importlib.import_module("paas_plugins.datastores.service")
Backup = backing.Backup


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context.open(Settings(data_dir=tmp_path / "data"), actor="test", is_admin=True)


class Stdio:
    pty = None
    on_resize = None

    def __init__(self, data: bytes = b"") -> None:
        self.data, self.written = io.BytesIO(data), bytearray()

    def read(self, n: int) -> bytes:
        return self.data.read(n)

    def write(self, data: bytes) -> None:
        self.written.extend(data)

    def write_err(self, data: bytes) -> None:
        pass

    def disconnected(self) -> bool:
        return False


def run(ctx: Context, *argv: str, stdio: Stdio | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(ctx=ctx, out=out, err=err, stdio=stdio, disconnected=lambda: True)
    return commands.dispatch(list(argv), env), out.getvalue(), err.getvalue()


def test_every_dokku_name_is_there(ctx: Context) -> None:
    names = set(commands.available(False, ctx.plugins))
    pg = {"create", "destroy", "list", "info", "link", "unlink", "connect", "export", "import"}
    pg_backups = {"backup", "backups", "restore", "backup-schedule", "logs"}
    assert {f"postgres:{n}" for n in pg | pg_backups} <= names
    assert {f"redis:{n}" for n in pg | pg_backups} <= names


def test_list_and_backups_render(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [
        {
            "name": "db1",
            "state": "running",
            "links": ["web", "api"],
            "created_at": "2026-01-01T00:00:00+00:00",
        }
    ]
    monkeypatch.setattr(backing, "list_services", lambda c, k: rows)
    code, out, _ = run(ctx, "postgres:list")
    assert code == 0 and out.splitlines()[1].split() == [
        "db1",
        "running",
        "web,api",
        "2026-01-01T00:00:00+00:00",
    ]
    code, out, _ = run(ctx, "postgres:list", "--format", "json")
    assert json.loads(out) == rows
    found = [
        Backup("db1-20260101T000000000000Z.dump", 3 * 1024 * 1024, "2026-01-01T00:00:00+00:00", "ab" * 32)
    ]
    monkeypatch.setattr(backing, "list_backups", lambda c, k, n: found)
    code, out, _ = run(ctx, "postgres:backups", "db1")
    assert code == 0 and "db1-20260101T000000000000Z.dump  3.0 MiB" in out
    code, out, _ = run(ctx, "postgres:backups", "db1", "--format", "json")
    assert json.loads(out)[0]["sha256"] == "ab" * 32


def test_errors_are_one_line(ctx: Context) -> None:
    code, out, err = run(ctx, "postgres:info", "nope")
    assert code == 1 and err == "error: postgres service 'nope' does not exist\n"
    code, _, err = run(ctx, "redis:create", "Bad")
    assert code == 1 and err.startswith("error: invalid redis service name 'Bad'") and err.count("\n") == 1
    code, _, err = run(ctx, "postgres:export", "db1")  # no stdio: no session to stream to
    assert code == 1 and err == "error: postgres:export needs a terminal or an SSH session\n"


def test_export_and_import_stream_bytes(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backing, "export", lambda c, k, n, out: out(b"PGDMP\x00\xff"))
    stdio = Stdio()
    assert run(ctx, "postgres:export", "db1", stdio=stdio)[0] == 0
    assert bytes(stdio.written) == b"PGDMP\x00\xff"
    got = bytearray()

    def fake_import(c, k, n, read_in):  # type: ignore[no-untyped-def]
        while chunk := read_in(4):
            got.extend(chunk)

    monkeypatch.setattr(backing, "import_", fake_import)
    code, out, _ = run(ctx, "postgres:import", "db1", stdio=Stdio(b"PGDMP data"))
    assert code == 0 and bytes(got) == b"PGDMP data" and "imported into postgres service db1" in out

    def missing(*a):  # type: ignore[no-untyped-def]
        raise NotFound("postgres service 'db9' does not exist")

    monkeypatch.setattr(backing, "import_", missing)
    assert (
        run(ctx, "postgres:import", "db9", stdio=Stdio(b""))[2]
        == "error: postgres service 'db9' does not exist\n"
    )


def test_the_host_cli_puts_the_terminal_in_raw_mode_for_run_and_connect_only(ctx: Context) -> None:
    """`paas run` and `paas <kind>:connect` on the host attach the terminal (define(terminal=True))."""
    wanted = {n for n in commands.available(True, ctx.plugins) if commands.wants_terminal(n, ctx.plugins)}
    assert wanted == {"run", "postgres:connect", "redis:connect"}
    assert not commands.wants_terminal("nope:connect", ctx.plugins)
