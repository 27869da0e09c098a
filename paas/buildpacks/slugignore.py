"""`.slugignore`: paths removed from the source before the buildpacks run (Heroku's rules).

One pattern per line, `#` comments, no negation. A pattern with a `/` (other than a trailing
one) is anchored at the root; one without matches a name at any depth. A match on a directory
removes everything below it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable


def parse(text: str | None) -> list[str]:
    patterns = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern = line.rstrip("/")
        if pattern.strip("/*"):  # never "/" or "*": that would remove the whole app
            patterns.append(pattern)
    return patterns


def _matches(pattern: str, path: str) -> bool:
    parts = path.split("/")
    if "/" in pattern:
        anchored = pattern.lstrip("/")
        depth = anchored.count("/") + 1
        return len(parts) >= depth and fnmatch.fnmatchcase("/".join(parts[:depth]), anchored)
    return any(fnmatch.fnmatchcase(part, pattern) for part in parts)


def keeper(text: str | None) -> Callable[[str], bool] | None:
    """A predicate that keeps the paths `.slugignore` does not remove (None: keep everything)."""
    patterns = parse(text)
    if not patterns:
        return None

    def keep(path: str) -> bool:
        return not any(_matches(p, path) for p in patterns)

    return keep
