"""Which buildpacks build an app: an override (`BUILDPACK_URL`, `.buildpacks`) or detection.

Detection order: Python, Node.js, static site, then a Dockerfile (only when no buildpack
recognised the app, as Dokku does), then Procfile-only. The built-in buildpacks' own `bin/detect`
scripts decide, so the rule lives once, in the buildpack. They run on the host against a folder
holding only the files they test for (DETECT_FILES, empty: the scripts look at names, not
contents), so a pushed tree costs the host's disk nothing however many files its root holds.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from paas.buildpacks.source import SourceTree
from paas.errors import PaasError
from paas.settings import Settings

BUILTIN_ORDER = ("python", "nodejs", "static")
BUILTIN_LAST = "procfile"  # after the Dockerfile check
BUILTINS = (*BUILTIN_ORDER, BUILTIN_LAST)
# The runtime each built-in buildpack's pin selects (see runtimes.py).
BUILTIN_RUNTIMES = {"python": "python", "nodejs": "node"}
MAX_BUILDPACKS = 8
# Every root file a built-in bin/detect tests with `-f` (tests/unit/test_push_limits.py checks
# this list against the scripts).
DETECT_FILES = (
    "requirements.txt",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "Pipfile",
    "Pipfile.lock",
    "poetry.lock",
    "uv.lock",
    "package.json",
    "index.html",
    ".static",
    "Procfile",
)

_GIT_URL = re.compile(
    r"^(?:https?|git)://(?:[A-Za-z0-9._~%!$&'()*+,;=-]+(?::[^@/\s]*)?@)?"
    r"[A-Za-z0-9.-]+(?::\d{1,5})?(?:/[A-Za-z0-9._~%+-]+)+/?(?:#[A-Za-z0-9._/-]+)?$"
)
_DIR_PATH = re.compile(r"^/[A-Za-z0-9._/+-]+$")
# Heroku's own URL of a buildpack we have built in (`heroku/python` as Dokku writes it) is ours.
_HEROKU_BUILTIN = re.compile(r"^https://github\.com/heroku/heroku-buildpack-(python|nodejs)(?:\.git)?/?$")


class DetectFailed(PaasError):
    """No buildpack accepts the app, or the override is unusable."""


@dataclass(frozen=True)
class Buildpack:
    """One buildpack to run: a built-in (by name), a git URL (cloned in the build container) or a
    directory on the server (mounted read-only)."""

    kind: str  # "builtin" | "git" | "dir"
    value: str  # name, URL or resolved host path
    source: str = field(default="", compare=False)  # as written (a Heroku URL of a built-in, say)

    def describe(self) -> str:
        if self.kind != "builtin":
            return self.value
        return f"built-in {self.value}" + (f" ({self.source})" if self.source not in ("", self.value) else "")


@dataclass(frozen=True)
class Options:
    """What the app's properties say about its build (paas/services/builders.py)."""

    builder: str = ""  # "" (detect), "herokuish" (buildpacks) or "dockerfile"
    buildpacks: tuple[str, ...] = ()  # buildpacks:list
    buildpacks_allowed: bool = True  # builder-herokuish allowed
    base_images: tuple[str, ...] = ()  # images a Dockerfile may name besides the stack (git:from-image's)
    manifest_buildpacks: tuple[str, ...] = ()  # app.json's `buildpacks` (before .buildpacks, as Dokku)
    build_dir: str = ""  # a folder of the repository built as the root
    keep_git_dir: bool = False  # the repository goes into the build as .git (git keep-git-dir)
    per_push_keys: tuple[str, ...] = ()  # config vars each push changes (GIT_REV): not dependency inputs
    keep_containers: bool = False  # the build's containers stay, stopped, until the next build (skip-cleanup)


@dataclass(frozen=True)
class Plan:
    kind: str  # "builtin" (one detected built-in), "custom" (override), "dockerfile"
    name: str  # what the log calls the app ("Python", "Dockerfile", ...)
    buildpacks: tuple[Buildpack, ...] = ()
    runtimes: tuple[str, ...] = field(default=())  # runtimes whose pins select the stack


def builtin_dir(name: str) -> Path:
    return Path(str(resources.files("paas.buildpacks"))) / "builtin" / name


def buildpacks_root(settings: Settings) -> Path:
    """Server directories usable as buildpacks live under here (nowhere else is mounted)."""
    return Path(os.environ.get("PAAS_BUILDPACKS_DIR") or settings.data_dir / "buildpacks")


def parse_buildpack(settings: Settings, raw: str, origin: str) -> Buildpack:
    """Validate one override entry; a bad one is a one-line error naming where it came from."""
    value = raw.strip()
    name = value.removeprefix("heroku/")
    if name in BUILTINS:
        return Buildpack("builtin", name, value)
    heroku = _HEROKU_BUILTIN.fullmatch(value)
    if heroku:
        return Buildpack("builtin", heroku.group(1), value)
    if _GIT_URL.match(value) and not value.split("#", 1)[-1].startswith("-"):
        return Buildpack("git", value)
    path = value.removeprefix("file://")
    if _DIR_PATH.match(path) and ".." not in path.split("/"):
        root = buildpacks_root(settings).resolve()
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(root):
            raise DetectFailed(f"{origin}: {path} is not under {root}, where server buildpacks live")
        if not (resolved / "bin" / "compile").is_file() or not (resolved / "bin" / "detect").is_file():
            raise DetectFailed(f"{origin}: {path} is not a buildpack (no bin/detect and bin/compile)")
        return Buildpack("dir", str(resolved))
    raise DetectFailed(
        f"{origin}: {value[:80]!r} is not a buildpack: use a built-in name "
        f"({', '.join(BUILTINS)}), an https:// or git:// URL (optionally #ref), or a directory "
        f"under {buildpacks_root(settings)}"
    )


def overrides(
    settings: Settings,
    tree: SourceTree,
    config: dict[str, str],
    listed: tuple[str, ...] = (),
    manifest: tuple[str, ...] = (),
) -> Plan | None:
    """`BUILDPACK_URL` (config) wins over the app's buildpacks:list, then app.json's `buildpacks`,
    then `.buildpacks` (repo), as in Dokku; None when none is set."""
    if config.get("BUILDPACK_URL", "").strip():
        bp = parse_buildpack(settings, config["BUILDPACK_URL"], "BUILDPACK_URL")
        return _custom_plan((bp,))
    if listed:
        return _custom_plan(tuple(parse_buildpack(settings, b, "buildpacks:list") for b in listed))
    if manifest:
        return _custom_plan(tuple(parse_buildpack(settings, b, "app.json buildpacks") for b in manifest))
    text = tree.read(".buildpacks")
    if text is None:
        return None
    entries = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not entries:
        raise DetectFailed(".buildpacks is empty: list one buildpack per line")
    if len(entries) > MAX_BUILDPACKS:
        raise DetectFailed(f".buildpacks lists {len(entries)} buildpacks; at most {MAX_BUILDPACKS}")
    return _custom_plan(
        tuple(parse_buildpack(settings, e, f".buildpacks line {i}") for i, e in enumerate(entries, 1))
    )


def _custom_plan(bps: tuple[Buildpack, ...]) -> Plan:
    runtimes = tuple(
        BUILTIN_RUNTIMES[b.value] for b in bps if b.kind == "builtin" and b.value in BUILTIN_RUNTIMES
    )
    return Plan("custom", "", bps, runtimes)


def _materialise_root(tree: SourceTree, dest: Path) -> None:
    """An empty file for each of DETECT_FILES that is a regular file at the root of the tree."""
    for name in DETECT_FILES:
        if tree.is_file(name):
            (dest / name).touch()


def run_detect(bp_dir: Path, build_dir: Path) -> str | None:
    """A buildpack's `bin/detect BUILD_DIR`: its first output line when it accepts, else None."""
    try:
        p = subprocess.run(
            [str(bp_dir / "bin" / "detect"), str(build_dir)],
            capture_output=True,
            text=True,
            timeout=30,
            env={"PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = p.stdout.strip().splitlines()
    return lines[0].strip() if p.returncode == 0 and lines else None


def detect(tree: SourceTree, dockerfile: bool = True) -> Plan:
    """The first built-in buildpack that accepts the app, or the Dockerfile, or Procfile-only."""
    with tempfile.TemporaryDirectory(prefix="paas-detect-") as tmp:
        root = Path(tmp)
        _materialise_root(tree, root)
        for name in BUILTIN_ORDER:
            found = run_detect(builtin_dir(name), root)
            if found:
                rt = BUILTIN_RUNTIMES.get(name)
                return Plan("builtin", found, (Buildpack("builtin", name),), (rt,) if rt else ())
        if dockerfile and tree.is_file("Dockerfile"):
            return Plan("dockerfile", "Dockerfile")
        found = run_detect(builtin_dir(BUILTIN_LAST), root)
        if found:
            return Plan("builtin", found, (Buildpack("builtin", BUILTIN_LAST),))
    raise DetectFailed(
        "no buildpack recognised this app: add requirements.txt or pyproject.toml (Python), "
        "package.json (Node.js), index.html (static site), a Dockerfile, or a Procfile"
    )


def plan(
    settings: Settings, tree: SourceTree, config: dict[str, str], options: Options | None = None
) -> Plan:
    """The builder `builder:set selected` forces, else overrides, else detection; buildpacks only
    where `builder-herokuish allowed` is not false."""
    options = options or Options()
    if options.builder == "dockerfile":
        if not tree.is_file("Dockerfile"):
            raise DetectFailed("the dockerfile builder is selected (builder:set), but there is no Dockerfile")
        return Plan("dockerfile", "Dockerfile")
    found = overrides(settings, tree, config, options.buildpacks, options.manifest_buildpacks) or detect(
        tree, dockerfile=options.builder != "herokuish"
    )
    if found.kind != "dockerfile" and not options.buildpacks_allowed:
        raise DetectFailed(
            "buildpack builds are not allowed for this app (builder-herokuish:set <app> allowed true)"
        )
    return found
