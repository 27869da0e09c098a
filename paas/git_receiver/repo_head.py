"""An app repository's HEAD names the branch that deploys, so `git clone paas:<app>` checks it out.

A bare repository starts with HEAD -> refs/heads/master (dulwich's default) whichever branch is
pushed; a clone whose remote HEAD names a missing branch checks out nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dulwich.errors import NotGitRepository
from dulwich.repo import Repo

from paas.core.validation import BRANCHES_THAT_DEPLOY

DEPLOY_REFS = tuple(f"refs/heads/{branch}".encode() for branch in BRANCHES_THAT_DEPLOY)
log = logging.getLogger("paas.repos")


def follow_deploy_branch(repo: Repo, pushed: bytes | None = None) -> bytes | None:
    """Point a dangling HEAD at the pushed deploy branch, or (none given) at the first deploy
    branch that exists. A HEAD that names an existing branch is the user's choice: kept.
    Returns the ref HEAD now names, or None when nothing changed."""
    _chain, sha = repo.refs.follow(b"HEAD")
    if sha is not None:
        return None
    candidates = (pushed,) if pushed is not None else DEPLOY_REFS
    for ref in candidates:
        if ref in DEPLOY_REFS and ref in repo.refs:
            repo.refs.set_symbolic_ref(b"HEAD", ref)
            return ref
    return None


def fix_all(repos_dir: Path) -> dict[str, bytes]:
    """At server start: repos made before HEAD followed pushes (app name -> the ref HEAD now names)."""
    fixed = {}
    for path in sorted(repos_dir.glob("*.git")):
        try:
            repo = Repo(str(path))
        except NotGitRepository:
            log.warning("%s is not a git repository", path)
            continue
        try:
            ref = follow_deploy_branch(repo)
        finally:
            repo.close()
        if ref is not None:
            fixed[path.name.removesuffix(".git")] = ref
    return fixed
