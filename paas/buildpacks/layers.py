"""The dependency layer: what a built-in buildpack installs from a few manifest files alone.

A build is two containers. The first sees only the dependency files (requirements.txt, the lock
files, package.json, ...) and installs from them; it is committed as an image keyed by a hash of
those files, the stack, the buildpack and the config. The second starts from that image, adds the
whole source and finishes (collectstatic, `npm run build`, ...). An unchanged dependency set
reuses the first image, so a code-only push installs nothing.

When the dependency install can read more than the manifests (a requirements line pointing at a
local path, npm install scripts of the app itself), the key is the whole tree: correct, and no
faster than a plain rebuild.

When the second step would only copy the code onto the dependency layer (`copy_only_files`), the
builder adds the tree and the buildpack's fixed files to that image itself, through the Engine
API, in a container it never starts: a code-only push runs no build process at all.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from importlib import resources

from paas.buildpacks.source import SourceTree

FULL_TREE = None  # dependency_paths() result: the install may read any file

PYTHON_FILES = (
    "requirements.txt",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "Pipfile",
    "Pipfile.lock",
    "poetry.lock",
    "uv.lock",
    ".python-version",
    "runtime.txt",
)
NODE_FILES = ("package.json", "package-lock.json", "npm-shrinkwrap.json", ".npmrc")
# Root package scripts that `npm ci` runs, and that may read any file of the app.
NPM_INSTALL_SCRIPTS = (
    "preinstall",
    "install",
    "postinstall",
    "prepublish",
    "preprepare",
    "prepare",
    "postprepare",
)

_INCLUDE = re.compile(r"^(?:-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+)(\S+)")
_LOCAL = re.compile(r"^(?:\.{1,2}(?:/|\[|$)|/|file:)")
_MAX_INCLUDES = 50


def _is_local(word: str) -> bool:
    """A requirements word that names something on disk: `.`, `./lib`, `-e .[dev]`, `file:...`."""
    value = word.split("=", 1)[1] if word.startswith("--") and "=" in word else word
    return bool(_LOCAL.match(value)) or " @ file:" in word or "@file:" in word


def _requirements_files(tree: SourceTree, first: str) -> list[str] | None:
    """requirements.txt and what it includes (-r/-c); None if a line installs a local path."""
    seen: list[str] = []
    todo = [first]
    while todo and len(seen) < _MAX_INCLUDES:
        path = posixpath.normpath(todo.pop())
        if path in seen or path.startswith("../"):
            continue
        seen.append(path)
        text = tree.read(path)
        if text is None:
            continue
        base = posixpath.dirname(path)
        for raw in text.splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            include = _INCLUDE.match(line)
            if include:
                target = include.group(1)
                if "://" in target:
                    continue
                todo.append(posixpath.join(base, target))
                continue
            try:
                words = shlex.split(line)
            except ValueError:
                words = line.split()
            if any(_is_local(w) for w in words):
                return FULL_TREE
    return seen


def python_paths(tree: SourceTree) -> list[str] | None:
    paths = [p for p in PYTHON_FILES if tree.is_file(p)]
    if tree.is_file("requirements.txt"):
        included = _requirements_files(tree, "requirements.txt")
        if included is FULL_TREE:
            return FULL_TREE
        paths += included
    return sorted(set(paths))


def node_paths(tree: SourceTree) -> list[str] | None:
    try:
        package = json.loads(tree.read("package.json") or "{}")
    except ValueError:
        return FULL_TREE  # the buildpack reports the error with the whole tree in view
    if not isinstance(package, dict):
        return FULL_TREE
    scripts = package.get("scripts") or {}
    if isinstance(scripts, dict) and any(s in scripts for s in NPM_INSTALL_SCRIPTS):
        return FULL_TREE
    if package.get("workspaces"):
        return FULL_TREE
    for section in ("dependencies", "devDependencies", "optionalDependencies"):
        deps = package.get(section) or {}
        if isinstance(deps, dict) and any(
            isinstance(v, str) and v.startswith(("file:", "link:", ".", "/")) for v in deps.values()
        ):
            return FULL_TREE
    return [p for p in NODE_FILES if tree.is_file(p)]


def dependency_paths(buildpack: str, tree: SourceTree) -> list[str] | None:
    """Files the dependency layer of a built-in buildpack is built from; [] when it has none."""
    if buildpack == "python":
        return python_paths(tree)
    if buildpack == "nodejs":
        return node_paths(tree)
    return []


# Entries whose presence makes the python buildpack's app phase do more than write .profile.d:
# another package manager's lock file (bin/compile then refuses, or installs with it) or
# Django's collectstatic (and its default web process in bin/release).
PYTHON_APP_STEPS = ("Pipfile.lock", "poetry.lock", "uv.lock", "manage.py")
COPY_ONLY_RELEASE = "---\ndefault_process_types: {}\n"


def copy_only_files(buildpack: str, tree: SourceTree) -> dict[str, str] | None:
    """The files the buildpack's app phase writes when, for this tree, it only copies the code on
    top of the dependency layer (paths under /app); None when it would run anything else.

    Python with a plain requirements.txt: bin/compile's app phase then only writes
    .profile.d/python.sh (conf/profile.sh) and bin/release names no default process.
    """
    if buildpack != "python" or not tree.is_file("requirements.txt"):
        return None
    if any(tree.exists(p) for p in PYTHON_APP_STEPS):
        return None
    profile = resources.files("paas.buildpacks").joinpath("builtin/python/conf/profile.sh").read_text()
    return {".profile.d/python.sh": profile}
