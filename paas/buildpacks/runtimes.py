"""Runtime pins (`.python-version`, `runtime.txt`, `engines.node`) and the stack that serves them.

Versions come from Debian, so a pin is matched at the granularity Debian ships: a Python minor
(3.14) and a Node.js major (24). The rules, in order: the first stack that offers a matching
version wins (the default stack first, so the second one is only built when needed); a pin older
than anything on offer gets the nearest newer version and a log line saying so; anything else is
an error that lists what is on offer. A pin is never silently ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from paas.buildpacks.stack import STACKS, StackRecipe
from paas.errors import PaasError

ReadFile = Callable[[str], "str | None"]

_PY_VERSION = re.compile(r"^(?:python-?)?(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


class PinError(PaasError):
    """A pin that no stack can satisfy, or that cannot be read."""


@dataclass(frozen=True)
class Pin:
    runtime: str  # "python" or "node"
    spec: str  # as written by the user
    source: str  # the file it came from


@dataclass(frozen=True)
class Choice:
    """The stack to build on and, per pinned runtime, the version to use."""

    stack: StackRecipe
    versions: dict[str, str]
    notes: tuple[str, ...] = ()


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def python_pin(read: ReadFile) -> tuple[Pin | None, list[str]]:
    """The Python pin and notes: `.python-version` wins over `runtime.txt`, and says so."""
    notes: list[str] = []
    pins = []
    raw = read(".python-version")
    if raw is not None:
        lines = [ln.strip() for ln in raw.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        if not lines:
            raise PinError(".python-version is empty: write a version such as 3.13")
        pins.append(Pin("python", lines[0], ".python-version"))
    raw = read("runtime.txt")
    if raw is not None:
        pins.append(Pin("python", raw.strip(), "runtime.txt"))
    if not pins:
        return None, notes
    if len(pins) == 2 and _python_minor(pins[0]) != _python_minor(pins[1]):
        notes.append(f"runtime.txt ({pins[1].spec}) is overridden by .python-version ({pins[0].spec})")
    return pins[0], notes


def _python_minor(pin: Pin) -> tuple[int, int | None, int | None]:
    m = _PY_VERSION.match(pin.spec.strip().lower())
    if not m:
        raise PinError(
            f"{pin.source}: cannot read {pin.spec[:40]!r} as a CPython version (write e.g. 3.13"
            + (" or python-3.13.1" if pin.source == "runtime.txt" else "")
            + ")"
        )
    return int(m.group(1)), int(m.group(2)) if m.group(2) else None, int(m.group(3)) if m.group(3) else None


def node_pin(read: ReadFile) -> Pin | None:
    raw = read("package.json")
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        raise PinError("package.json is not valid JSON") from None
    engines = data.get("engines") if isinstance(data, dict) else None
    spec = engines.get("node") if isinstance(engines, dict) else None
    if spec is None:
        return None
    if not isinstance(spec, str) or not spec.strip():
        raise PinError('package.json: engines.node must be a version range such as "20.x"')
    return Pin("node", spec.strip(), "package.json engines.node")


# --- node version ranges, reduced to intervals of (major, minor, patch) ------------------------

_INF = (1 << 30, 0, 0)
_PART = re.compile(r"^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:[-+][0-9A-Za-z.-]*)?$")
_COMPARATOR = re.compile(r"^(>=|<=|>|<|=|\^|~>|~)?\s*(.+)$")

Interval = tuple[tuple[int, int, int], tuple[int, int, int]]  # [low, high)


def _parts(text: str) -> list[int | None]:
    m = _PART.match(text)
    if not m:
        raise ValueError(text)
    return [None if g is None or g in "xX*" else int(g) for g in m.groups()]


def _bump(parts: list[int | None]) -> tuple[int, int, int]:
    """The first version past a partial one: 20 -> 21.0.0, 20.1 -> 20.2.0, 20.1.2 -> 20.1.3."""
    major, minor, patch = parts
    assert major is not None
    if minor is None:
        return (major + 1, 0, 0)
    if patch is None:
        return (major, minor + 1, 0)
    return (major, minor, patch + 1)


def _floor(parts: list[int | None]) -> tuple[int, int, int]:
    return (parts[0] or 0, parts[1] or 0, parts[2] or 0)


def _comparator(op: str, text: str) -> Interval:
    parts = _parts(text)
    if parts[0] is None:  # '*', 'x'
        return ((0, 0, 0), _INF)
    lo, partial_hi = _floor(parts), _bump(parts)
    if op in ("", "="):
        return (lo, partial_hi)
    if op == ">=":
        return (lo, _INF)
    if op == ">":
        return (partial_hi, _INF)
    if op == "<":
        return ((0, 0, 0), lo)
    if op == "<=":
        return ((0, 0, 0), partial_hi)
    if op in ("~", "~>"):
        major, minor = parts[0], parts[1]
        return (lo, (major + 1, 0, 0) if minor is None else (major, minor + 1, 0))
    # caret: up to the next change of the first non-zero part
    major, minor, patch = parts
    if major > 0 or minor is None:
        return (lo, (major + 1, 0, 0))
    if minor > 0 or patch is None:
        return (lo, (0, minor + 1, 0))
    return (lo, (0, 0, patch + 1))


def node_range(spec: str) -> list[Interval]:
    """A semver range as npm writes it, as a union of intervals; ValueError when unreadable."""
    intervals: list[Interval] = []
    for alternative in spec.split("||"):
        alternative = alternative.strip()
        if alternative in ("", "*", "latest", "x", "lts/*"):
            intervals.append(((0, 0, 0), _INF))
            continue
        hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", alternative)
        if hyphen:
            lo = _floor(_parts(hyphen.group(1)))
            hi = _bump(_parts(hyphen.group(2)))
            intervals.append((lo, hi))
            continue
        lo, hi = (0, 0, 0), _INF
        for token in re.sub(r"(>=|<=|>|<|=|\^|~>|~)\s+", r"\1", alternative).split():
            m = _COMPARATOR.match(token)
            if not m:
                raise ValueError(token)
            c_lo, c_hi = _comparator(m.group(1) or "", m.group(2))
            lo, hi = max(lo, c_lo), min(hi, c_hi)
        intervals.append((lo, hi))
    return [(lo, hi) for lo, hi in intervals if lo < hi]


def _node_allows_major(intervals: list[Interval], major: int) -> bool:
    return any(lo < (major + 1, 0, 0) and hi > (major, 0, 0) for lo, hi in intervals)


def _offered(runtime: str, stacks: tuple[StackRecipe, ...]) -> list[str]:
    versions = {v for s in stacks for v in s.offers(runtime)}
    return sorted(versions, key=_version_key)


def _first_stack(runtime: str, version: str, stacks: tuple[StackRecipe, ...]) -> StackRecipe:
    return next(s for s in stacks if version in s.offers(runtime))


def resolve_python(pin: Pin, stacks: tuple[StackRecipe, ...] = STACKS) -> tuple[str, list[str]]:
    """The Python minor version to use for a pin, plus log notes."""
    major, minor, patch = _python_minor(pin)
    offered = _offered("python", stacks)
    if major != 3:
        raise PinError(
            f"Python {pin.spec} ({pin.source}) is not available: versions on offer are {', '.join(offered)}"
        )
    if minor is None:  # "3": any Python 3, the default stack's
        return stacks[0].offers("python")[0], []
    wanted = f"{major}.{minor}"
    if wanted in offered:
        notes = []
        if patch is not None:
            notes.append(f"{pin.source} asks for {pin.spec}: Debian ships one {wanted}.x release, used here")
        return wanted, notes
    if _version_key(wanted) < _version_key(offered[0]):
        return offered[0], [
            f"Python {wanted} ({pin.source}) is older than any on offer: "
            f"using {offered[0]}, the nearest newer version"
        ]
    raise PinError(
        f"Python {pin.spec} ({pin.source}) is not available: versions on offer are {', '.join(offered)}"
    )


def resolve_node(pin: Pin, stacks: tuple[StackRecipe, ...] = STACKS) -> tuple[str, list[str]]:
    """The Node.js major version to use for an `engines.node` range, plus log notes."""
    try:
        intervals = node_range(pin.spec)
    except ValueError:
        raise PinError(f"{pin.source}: cannot read {pin.spec[:40]!r} as a version range") from None
    offered = _offered("node", stacks)
    if not intervals:
        raise PinError(f"{pin.source}: {pin.spec[:40]!r} matches no version at all")
    for stack in stacks:  # stack order first: prefer what the default stack has
        for major in stack.offers("node"):
            if _node_allows_major(intervals, int(major)):
                return major, []
    lowest = int(offered[0])
    if all(hi <= (lowest, 0, 0) for _lo, hi in intervals):
        return offered[0], [
            f"Node.js {pin.spec} ({pin.source}) is older than any on offer: "
            f"using {offered[0]}, the nearest newer version"
        ]
    raise PinError(
        f"Node.js {pin.spec} ({pin.source}) is not available: versions on offer are "
        + ", ".join(f"{v}.x" for v in offered)
    )


def _exact(pin: Pin, stack: StackRecipe) -> str | None:
    """The version `stack` offers that satisfies the pin as written, or None."""
    if pin.runtime == "python":
        major, minor, _patch = _python_minor(pin)
        if major != 3:
            return None
        if minor is None:
            return (stack.offers("python") or (None,))[0]
        return f"{major}.{minor}" if f"{major}.{minor}" in stack.offers("python") else None
    try:
        intervals = node_range(pin.spec)
    except ValueError:
        return None
    return next((m for m in stack.offers("node") if _node_allows_major(intervals, int(m))), None)


def choose(read: ReadFile, runtimes: tuple[str, ...], stacks: tuple[StackRecipe, ...] = STACKS) -> Choice:
    """Resolve the pins of the given runtimes and pick the first stack that offers all of them.

    A stack that satisfies every pin exactly wins; otherwise each pin is resolved on its own
    (moving an old pin up, with a note, or failing with what is on offer).
    """
    pins: dict[str, Pin] = {}
    notes: list[str] = []
    if "python" in runtimes:
        pin, pin_notes = python_pin(read)
        notes += pin_notes
        if pin is not None:
            pins["python"] = pin
    if "node" in runtimes:
        pin = node_pin(read)
        if pin is not None:
            pins["node"] = pin
    for stack in stacks:
        exact = {rt: _exact(pin, stack) for rt, pin in pins.items()}
        if all(exact.values()):
            versions = {rt: v for rt, v in exact.items() if v}
            more = resolve_python(pins["python"], stacks)[1] if "python" in pins else []
            return Choice(stack, versions, tuple(notes + more))
    versions: dict[str, str] = {}
    for rt, pin in pins.items():
        versions[rt], more = (resolve_python if rt == "python" else resolve_node)(pin, stacks)
        notes += more
    for stack in stacks:
        if all(v in stack.offers(rt) for rt, v in versions.items()):
            return Choice(stack, versions, tuple(notes))
    wanted = ", ".join(f"{rt} {v}" for rt, v in versions.items())
    raise PinError(f"no stack offers {wanted} together; stacks: " + ", ".join(s.name for s in stacks))
