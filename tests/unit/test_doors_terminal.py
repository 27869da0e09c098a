"""Door 4: what a command prints reaches the terminal with its control characters escaped."""

from __future__ import annotations

import io
import json
import logging
import subprocess
from pathlib import Path

import pytest

from paas import commands
from paas.core.context import Context
from paas.core.output import LogFormatter, TerminalWriter, json_text
from paas.settings import Settings

OSC52 = "\x1b]52;c;cHduZWQ=\x07"


def run(ctx: Context, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = commands.CommandEnv(ctx=ctx, out=out, err=err, disconnected=lambda: True)
    return commands.dispatch(list(argv), env), out.getvalue(), err.getvalue()


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    ctx = Context.open(Settings(data_dir=tmp_path), actor="host", is_admin=True, on_host=True)
    assert run(ctx, "apps:create", "demo")[0] == 0
    return ctx


def _terminal_safe(text: str) -> bool:
    return all(c.isprintable() or c in "\n\t" for c in text)


def test_the_writer_escapes_everything_but_line_breaks_and_tabs() -> None:
    inner = io.StringIO()
    writer = TerminalWriter(inner)
    for piece in ("a\tb ", OSC52, " c\rforged\n", "\x9b2J", "\u2028x\n"):  # cut anywhere
        writer.write(piece)
    assert inner.getvalue() == "a\tb \\x1b]52;c;cHduZWQ=\\x07 c\\rforged\n\\x9b2J\\u2028x\n"


def test_json_output_stays_json_and_terminal_safe() -> None:
    data = {"V": f"x{OSC52}\x9b\u2028é\n"}
    text = json_text(data)
    assert _terminal_safe(text) and json.loads(text) == data and "é" in text


@pytest.mark.parametrize(
    "argv",
    [
        ("config:get", "demo", "EVIL"),
        ("config", "demo"),
        ("config", "demo", "--format", "json"),
        ("config:show", "demo"),
        ("events",),
    ],
)
def test_a_config_value_with_an_escape_is_printed_escaped(ctx: Context, argv: tuple[str, ...]) -> None:
    """Before: `config:get` wrote the value's ESC sequence raw (an OSC 52 sets the clipboard)."""
    assert run(ctx, "config:set", "demo", f"EVIL=before{OSC52}after")[0] == 0
    code, out, err = run(ctx, *argv)
    assert code == 0, err
    assert _terminal_safe(out) and _terminal_safe(err)
    if argv[0] == "config:get":
        assert out == "before\\x1b]52;c;cHduZWQ=\\x07after\n"
    if "json" in argv:
        assert json.loads(out)["EVIL"] == f"before{OSC52}after"


def test_an_unknown_option_with_an_escape_is_refused_escaped(ctx: Context) -> None:
    code, out, err = run(ctx, "apps:info", "demo", f"--x{OSC52}")
    assert code != 0 and _terminal_safe(err) and "\\x1b" in err


def test_an_export_with_control_characters_is_the_same_value_for_bash(ctx: Context) -> None:
    value = f"it's {OSC52}\x9b\\ \n\tend"
    assert run(ctx, "config:set", "demo", f"EVIL={value}", "PLAIN=a b")[0] == 0
    code, out, _ = run(ctx, "config:export", "demo")
    assert code == 0 and _terminal_safe(out)
    shown = subprocess.run(
        ["bash", "-c", out + 'printf %s "$EVIL"'], capture_output=True, text=True, check=True
    ).stdout
    assert shown == value


def test_log_lines_hold_no_control_characters_and_no_forged_lines() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("paas.test-doors")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("request GET %s failed", f"/x{OSC52}\nERROR forged line")
        try:
            raise RuntimeError(f"boom{OSC52}")
        except RuntimeError:
            logger.exception("bug")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "WARNING request GET /x\\x1b]52;c;cHduZWQ=\\x07\\nERROR forged line failed"
    assert lines[1] == "ERROR bug" and lines[2].startswith("Traceback")  # tracebacks keep their lines
    assert _terminal_safe(stream.getvalue())
