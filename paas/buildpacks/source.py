"""Turn a pushed commit into a tar for the build container, straight from the git object store.

Reading the commit (not a checkout) means no user-controlled path ever touches the host's
filesystem: detection, pins and dependency keys read blobs, and the tar is handed to docker.
"""

from __future__ import annotations

import copy
import hashlib
import io
import stat
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import IO

from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from paas.core.names import APP_UID
from paas.errors import PaasError

MAX_READ = 4 << 20
# What one app's source may hold. A tree names its subtrees by hash, so a few objects can name
# 10^10 paths (10 levels of 10 entries, all the same subtree): walks count what they visit.
MAX_TREE_ENTRIES = 250_000  # files, links and directories
MAX_TREE_DEPTH = 64
MAX_DIR_BYTES = 8 << 20  # one directory's listing (a tree object): ~200k entries
WALK_SECONDS = 30.0  # one walk of the whole tree
MAX_TREE_BYTES = 2 << 30  # the files' total size, unpacked


class TreeTooBig(PaasError):
    """The pushed tree passes a limit of what the host reads."""


class SourceTree:
    """One commit of an app's repo, read-only."""

    def __init__(self, repo: Repo, commit_sha: str) -> None:
        self.repo = repo
        self.commit_sha = commit_sha
        commit = repo[commit_sha.encode()]
        assert isinstance(commit, Commit)
        self.tree_id = commit.tree.decode()
        self.mtime = commit.commit_time  # not 0: Python's .pyc check compares source mtimes
        self.git_dir: Path | None = None  # a clone's .git, put in the app's tars (git keep-git-dir)

    def _tree(self, sha: bytes) -> Tree | None:
        """A directory listing, read only when small enough (it is parsed in memory)."""
        type_num, raw = self.repo.object_store.get_raw(sha)
        if type_num != Tree.type_num:
            return None
        if len(raw) > MAX_DIR_BYTES:
            raise TreeTooBig(f"a directory of the pushed tree is larger than {MAX_DIR_BYTES >> 20} MiB")
        tree = Tree.from_raw_string(type_num, raw, sha=sha)
        assert isinstance(tree, Tree)
        return tree

    def _entry(self, path: str) -> tuple[int, bytes] | None:
        parts = [p for p in path.split("/") if p]
        if not parts or len(parts) > MAX_TREE_DEPTH:
            return None
        tree = self._tree(self.tree_id.encode())
        for i, part in enumerate(parts):
            if tree is None:
                return None
            try:
                mode, sha = tree[part.encode()]
            except KeyError:
                return None
            if i == len(parts) - 1:
                return mode, sha
            if not stat.S_ISDIR(mode):
                return None
            tree = self._tree(sha)
        return None

    def subdir(self, path: str) -> SourceTree:
        """The tree of a folder of this commit, read as if it were the root (`builder:set build-dir`)."""
        entry = self._entry(path)
        if entry is None or not stat.S_ISDIR(entry[0]):
            raise PaasError(f"build-dir {path!r} is not a folder of commit {self.commit_sha[:7]}")
        sub = copy.copy(self)
        sub.tree_id = entry[1].decode()
        return sub

    def exists(self, path: str) -> bool:
        """Whether the tree has an entry (file, link, folder or submodule) at `path`."""
        return self._entry(path) is not None

    def is_file(self, path: str) -> bool:
        entry = self._entry(path)
        return entry is not None and stat.S_ISREG(entry[0])

    def read(self, path: str, limit: int = MAX_READ) -> str | None:
        """A regular file's text (symlinks are not followed), or None (also when over `limit`)."""
        entry = self._entry(path)
        if entry is None or not stat.S_ISREG(entry[0]):
            return None
        blob = self.repo[entry[1]]
        if not isinstance(blob, Blob) or blob.raw_length() > limit:
            return None
        return blob.data.decode("utf-8", errors="replace")

    def digest(self, paths: Iterable[str]) -> str:
        """A hash of the given paths' names, modes and contents (absent paths count too)."""
        h = hashlib.sha256()
        for path in sorted(set(paths)):
            entry = self._entry(path)
            h.update(f"{path}\0{entry[0] if entry else '-'}\0{entry[1].decode() if entry else ''}\n".encode())
        return h.hexdigest()

    def walk(self) -> Iterator[tuple[str, int, bytes]]:
        """(path, mode, sha) of every entry, directories included, depth first. The one walk of a
        whole tree on the host: it counts every entry it visits (skipped ones too), stops at
        MAX_TREE_DEPTH and gives up after WALK_SECONDS, each with a one-line TreeTooBig."""
        deadline = time.monotonic() + WALK_SECONDS
        seen = 0
        todo: list[tuple[bytes, int, bytes, int]] = [(b"", stat.S_IFDIR, self.tree_id.encode(), 0)]
        while todo:
            path, mode, sha, depth = todo.pop()
            if path:
                yield path.decode("utf-8", errors="surrogateescape"), mode, sha
            if not stat.S_ISDIR(mode):
                continue
            if depth >= MAX_TREE_DEPTH:
                raise TreeTooBig(f"the pushed tree nests directories deeper than {MAX_TREE_DEPTH} levels")
            if time.monotonic() > deadline:
                raise TreeTooBig(f"reading the pushed tree took longer than {WALK_SECONDS:g} s")
            tree = self._tree(sha)
            if tree is None:
                continue
            items = list(tree.iteritems())
            seen += len(items)  # counted when listed, so the queue stays bounded too
            if seen > MAX_TREE_ENTRIES:
                raise TreeTooBig(f"the pushed tree has more than {MAX_TREE_ENTRIES} files and directories")
            if any(e.path in (b"", b".", b"..") or b"/" in e.path for e in items):
                raise PaasError(
                    "the pushed tree names a file '', '.', '..' or with a '/' (git fsck refuses it)"
                )
            prefix = path + b"/" if path else b""
            todo.extend((prefix + e.path, e.mode, e.sha, depth + 1) for e in reversed(items))

    def check(self) -> int:
        """Walk the whole tree once, raising what walk() raises; the number of entries."""
        return sum(1 for _ in self.walk())

    def files(self) -> Iterator[tuple[str, int, bytes]]:
        """(path, mode, blob sha) of every file and symlink; submodules are not fetched."""
        for path, mode, sha in self.walk():
            if not stat.S_ISDIR(mode) and mode != 0o160000:
                yield path, mode, sha

    def tar(
        self,
        keep: Callable[[str], bool] | None = None,
        launcher: bool = True,
        prefix: str = "app/",
        extra: dict[str, str] | None = None,
        with_git: bool = True,
    ) -> IO[bytes]:
        """A tar (spooled to disk when large) with the tree under `app/`, owned by the app user,
        plus the launcher at `/start`. `keep(path)` filters files (e.g. `.slugignore`); `extra`
        files (paths under `app/`) come last, over the tree's (the buildpack's fixed files);
        `git_dir`, when set and `with_git`, goes in as `.git`."""
        out = tempfile.SpooledTemporaryFile(max_size=32 << 20)
        with tarfile.open(fileobj=out, mode="w") as tar:
            seen_dirs = {""}
            if prefix:
                _add_dir(tar, prefix.rstrip("/"))
                seen_dirs.add(prefix.rstrip("/"))
            total = 0
            for path, mode, sha in self.files():
                if keep is not None and not keep(path):
                    continue
                blob = self.repo.object_store[sha]
                assert isinstance(blob, Blob)
                total += blob.raw_length()
                if total > MAX_TREE_BYTES:
                    raise TreeTooBig(f"the pushed tree is larger than {MAX_TREE_BYTES >> 20} MiB unpacked")
                _add_parents(tar, prefix, path, seen_dirs)
                if stat.S_ISLNK(mode):
                    info = tarfile.TarInfo(prefix + path)
                    info.type = tarfile.SYMTYPE
                    info.linkname = blob.data.decode("utf-8", errors="surrogateescape")
                    info.uid = info.gid = APP_UID
                    tar.addfile(info)
                else:
                    _add(tar, prefix + path, blob.data, 0o755 if mode & 0o111 else 0o644, mtime=self.mtime)
            if self.git_dir is not None and with_git:
                _add_git_dir(tar, self.git_dir, prefix + ".git")
            for path, text in (extra or {}).items():
                _add_parents(tar, prefix, path, seen_dirs)
                _add(tar, prefix + path, text.encode(), 0o644)
            if launcher:
                _add(tar, "start", launcher_bytes("start"), 0o755, uid=0)
        out.seek(0)
        return out


def _add_git_dir(tar: tarfile.TarFile, git_dir: Path, name: str) -> None:
    """A clone's .git (made by the builder, not pushed: its files are plain files and folders),
    owned by the app user so that `git status` works in the app's processes."""
    _add_dir(tar, name)
    for path in sorted(git_dir.rglob("*")):
        arcname = f"{name}/{path.relative_to(git_dir)}"
        if path.is_symlink():
            continue
        if path.is_dir():
            _add_dir(tar, arcname)
        elif path.is_file():  # streamed: a pack may be large
            info = tar.gettarinfo(str(path), arcname)
            info.uid = info.gid = APP_UID
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(path, "rb") as fh:
                tar.addfile(info, fh)


def launcher_bytes(name: str) -> bytes:
    return resources.files("paas.buildpacks").joinpath(f"launcher/{name}").read_bytes()


def read_file(repo: Repo, commit_sha: str, path: str) -> str | None:
    """A file of the commit's tree, or None."""
    return SourceTree(repo, commit_sha).read(path)


def source_tar(repo: Repo, commit_sha: str) -> IO[bytes]:
    return SourceTree(repo, commit_sha).tar()


def _add_parents(tar: tarfile.TarFile, prefix: str, path: str, seen: set[str]) -> None:
    """The directories above `path` that the tar does not hold yet, owned by the app user like
    the files (the pushed tree and the extra files both need them)."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        d = prefix + "/".join(parts[:i])
        if d not in seen:
            _add_dir(tar, d)
            seen.add(d)


def _add_dir(tar: tarfile.TarFile, name: str, uid: int = APP_UID) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.uid = info.gid = uid
    tar.addfile(info)


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int, uid: int = APP_UID, mtime: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.uid = info.gid = uid
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def files_tar(files: dict[str, str | bytes], uid: int = APP_UID, mode: int = 0o644) -> bytes:
    """A small tar of files (the process table, the launcher) to put into a container."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({"/".join(n.split("/")[:i]) for n in files for i in range(1, n.count("/") + 1)})
        for d in dirs:
            _add_dir(tar, d, uid)
        for name, data in files.items():
            _add(tar, name, data.encode() if isinstance(data, str) else data, mode, uid)
    return buf.getvalue()
