import io
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from paas import commands
from paas.core.context import Context
from paas.settings import Settings


def run(ctx: Context, *argv: str, on_host: bool = False) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(ctx=ctx, out=out, err=err, on_host=on_host, disconnected=lambda: True)
    return commands.dispatch(list(argv), env), out.getvalue(), err.getvalue()


def test_help_lists_commands_with_descriptions(tmp_path: Path) -> None:
    ctx = Context.open(Settings(data_dir=tmp_path), is_admin=True)
    code, out, _ = run(ctx, "help")
    assert code == 0
    assert "apps:create" in out and "Create an app" in out
    assert "server" not in out.split()  # host-only commands are not offered over SSH
    code, out, _ = run(ctx, "help", on_host=True)
    assert "stack:build" in out
    code, out, _ = run(ctx, "apps:help")
    assert code == 0 and "apps:list" in out and "ssh-keys" not in out


def test_usage_errors_are_one_line_plus_usage(tmp_path: Path) -> None:
    ctx = Context.open(Settings(data_dir=tmp_path), is_admin=True)
    code, _, err = run(ctx, "apps:create")
    assert code == 1
    assert err.startswith("error: Missing argument 'APP'.")
    assert "Usage: apps:create" in err


def test_create_then_list_as_json(tmp_path: Path) -> None:
    ctx = Context.open(Settings(data_dir=tmp_path), is_admin=True)
    assert run(ctx, "apps:create", "web1")[0] == 0
    code, out, _ = run(ctx, "apps:list", "--format", "json")
    assert code == 0 and '"name": "web1"' in out


_ctx_cache: dict[str, Context] = {}


COMMAND_WORDS = sorted(commands.available(on_host=False)) + [
    "--format",
    "json",
    "-h",
    "x",
    "--",
    "-n",
    "-t",
    "-p",
    "web",
    "web=2",
    "KEY=v",
    "v1",
    "--confirm",
    "--no-restart",
    "--encoded",
    "example.com",
    "made",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(COMMAND_WORDS), st.text(max_size=12)), max_size=6))
def test_random_argv_gives_clean_errors_or_success(tmp_path_factory, argv: list[str]) -> None:
    """No argv reaches a traceback. (Apps exist only in the store, so nothing touches docker.)"""
    if "ctx" not in _ctx_cache:
        base = Context.open(Settings(data_dir=tmp_path_factory.mktemp("fuzz")))
        uid = base.store.add_key_user("fuzzer", False, "2026-01-01T00:00:00Z")
        base.store.create_app("made", owner_id=uid)  # a user (no admin) who owns "made"
        _ctx_cache["ctx"] = base.for_actor("fuzzer", False, user_id=uid)
    code, out, err = run(_ctx_cache["ctx"], *argv)
    assert code in (0, 1)
    assert "Traceback" not in out + err
    if code == 1:
        assert err.startswith("error: ")
        assert "internal error" not in err
