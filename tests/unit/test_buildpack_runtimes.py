"""Pins choose a stack; older pins move up with a note; impossible ones fail listing what exists."""

from __future__ import annotations

import json

import pytest

from paas.buildpacks import runtimes, stack
from paas.buildpacks.runtimes import Pin, PinError


def reader(files: dict[str, str]):
    return files.get


def test_no_pin_uses_the_default_stack() -> None:
    choice = runtimes.choose(reader({"requirements.txt": "flask"}), ("python",))
    assert choice.stack == stack.DEFAULT_STACK and choice.versions == {} and choice.notes == ()


@pytest.mark.parametrize(
    ("text", "version", "stack_name"),
    [
        ("3.13\n", "3.13", "trixie"),
        ("3.14", "3.14", "forky"),
        ("# comment\n3.15.0\n", "3.15", "forky"),
        ("3", "3.13", "trixie"),
    ],
)
def test_python_version_file_selects_the_stack(text: str, version: str, stack_name: str) -> None:
    choice = runtimes.choose(reader({".python-version": text}), ("python",))
    assert choice.versions == {"python": version}
    assert choice.stack.name == stack_name


def test_runtime_txt_is_read_and_python_version_wins_saying_so() -> None:
    choice = runtimes.choose(reader({"runtime.txt": "python-3.14.2\n"}), ("python",))
    assert choice.versions == {"python": "3.14"}
    assert any("Debian ships one 3.14.x release" in n for n in choice.notes)
    both = runtimes.choose(reader({"runtime.txt": "python-3.14.2", ".python-version": "3.13"}), ("python",))
    assert both.versions == {"python": "3.13"}
    assert "runtime.txt (python-3.14.2) is overridden by .python-version (3.13)" in both.notes


def test_an_older_python_pin_uses_the_nearest_newer_and_says_so() -> None:
    choice = runtimes.choose(reader({".python-version": "3.11"}), ("python",))
    assert choice.versions == {"python": "3.13"} and choice.stack == stack.DEFAULT_STACK
    assert choice.notes == (
        "Python 3.11 (.python-version) is older than any on offer: using 3.13, the nearest newer version",
    )


@pytest.mark.parametrize("text", ["3.99", "3.16", "2.7", "4"])
def test_an_unsatisfiable_python_pin_lists_the_versions_on_offer(text: str) -> None:
    with pytest.raises(PinError) as err:
        runtimes.choose(reader({".python-version": text}), ("python",))
    assert str(err.value) == (
        f"Python {text} (.python-version) is not available: versions on offer are 3.13, 3.14, 3.15"
    )


@pytest.mark.parametrize("text", ["pypy3.10", "latest", "3.x.y", ""])
def test_an_unreadable_python_pin_is_an_error(text: str) -> None:
    with pytest.raises(PinError):
        runtimes.choose(reader({".python-version": text}), ("python",))


def node(spec: str) -> dict[str, str]:
    return {"package.json": json.dumps({"engines": {"node": spec}})}


@pytest.mark.parametrize(
    ("spec", "major"),
    [
        ("20.x", "20"),
        ("20", "20"),
        (">=18", "20"),
        ("^20.1.0", "20"),
        ("~20.5", "20"),
        (">=18 <21", "20"),
        ("18 || 20", "20"),
        ("*", "20"),
        ("24.x", "24"),
        (">=21", "24"),
        ("^24", "24"),
        ("22 - 24", "24"),
        ("v24.1.0", "24"),
    ],
)
def test_node_ranges_pick_a_major_preferring_the_default_stack(spec: str, major: str) -> None:
    choice = runtimes.choose(reader(node(spec)), ("node",))
    assert choice.versions == {"node": major}
    assert choice.stack.name == ("trixie" if major == "20" else "forky")
    assert choice.notes == ()


@pytest.mark.parametrize("spec", ["18.x", "^16.0.0", "<=18", "14 || 16"])
def test_older_node_ranges_use_the_nearest_newer_with_a_note(spec: str) -> None:
    choice = runtimes.choose(reader(node(spec)), ("node",))
    assert choice.versions == {"node": "20"}
    assert "is older than any on offer: using 20, the nearest newer version" in choice.notes[0]


@pytest.mark.parametrize("spec", [">=30", "22.x", "25 || 26", ">=21 <22"])
def test_unsatisfiable_node_ranges_list_the_versions_on_offer(spec: str) -> None:
    with pytest.raises(PinError) as err:
        runtimes.choose(reader(node(spec)), ("node",))
    assert str(err.value).endswith("is not available: versions on offer are 20.x, 24.x")


@pytest.mark.parametrize("spec", ["banana", ">=22 <20"])
def test_unreadable_or_empty_node_ranges_are_errors(spec: str) -> None:
    with pytest.raises(PinError):
        runtimes.choose(reader(node(spec)), ("node",))


def test_a_pin_of_a_runtime_the_buildpack_does_not_use_is_not_read() -> None:
    choice = runtimes.choose(reader({".python-version": "3.99", **node("20.x")}), ("node",))
    assert choice.versions == {"node": "20"}


def test_pins_for_two_runtimes_must_share_a_stack() -> None:
    files = {".python-version": "3.14", **node("20.x")}
    with pytest.raises(PinError, match="no stack offers python 3.14, node 20 together"):
        runtimes.choose(reader(files), ("python", "node"))
    files = {".python-version": "3.14", **node(">=20")}
    choice = runtimes.choose(reader(files), ("python", "node"))
    # Node.js 20 alone would stay on trixie, but only forky has Python 3.14 (and Node.js 24)
    assert choice.stack.name == "forky" and choice.versions == {"python": "3.14", "node": "24"}


def test_node_range_intervals() -> None:
    assert runtimes.node_range("^0.2.3") == [((0, 2, 3), (0, 3, 0))]
    assert runtimes.node_range(">20.1") == [((20, 2, 0), (1 << 30, 0, 0))]
    assert runtimes.node_range("1.2.x") == [((1, 2, 0), (1, 3, 0))]


def test_stack_recipes_promise_what_they_check() -> None:
    assert stack.STACKS[0] is stack.DEFAULT_STACK
    forky = stack.stack_named("forky")
    assert forky.script == "sid" and forky.offers("python") == ("3.14", "3.15")
    script = forky.setup_script()
    assert "python3.15 -c 'import ensurepip, venv'" in script
    assert 'grep -q "^v24\\."' in script
    assert "policy-rc.d" in script and "nginx-light nodejs npm" in script
    assert stack.DEFAULT_STACK.tag != forky.tag
    with pytest.raises(Exception, match="no stack named"):
        stack.stack_named("buster")


def test_pin_dataclass_keeps_the_source() -> None:
    pin, notes = runtimes.python_pin(reader({"runtime.txt": "python-3.13.1"}))
    assert pin == Pin("python", "python-3.13.1", "runtime.txt") and notes == []


def test_the_stack_tag_covers_the_script_run_in_the_chroot(monkeypatch: pytest.MonkeyPatch) -> None:
    before = stack.DEFAULT_STACK.tag
    monkeypatch.setattr(stack, "APT_INSTALL", stack.APT_INSTALL + "echo changed\n")
    assert stack.DEFAULT_STACK.tag != before
    assert "cp -a /tmp/paas-venv/lib/python3.13/site-packages/pip* /opt/paas/pip/python3.13/" in (
        stack.DEFAULT_STACK.setup_script()
    )
