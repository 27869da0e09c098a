"""Turn a pushed commit into a tar for the build container, straight from the git object store.

Reading the commit (not a checkout) means no user-controlled path ever touches the host's
filesystem: detection, pins and dependency keys read blobs, and the tar is handed to docker.
"""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from typing import IO

from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from paas.core.names import APP_UID
from paas.errors import PaasError

MAX_READ = 4 << 20
MAX_TREE_FILES = 200_000  # what one app's source may hold, unpacked (a few bytes can unpack to TBs)
MAX_TREE_BYTES = 2 << 30  # manifests bigger than this are not parsed on the host


class SourceTree:
    """One commit of an app's repo, read-only."""

    def __init__(self, repo: Repo, commit_sha: str) -> None:
        self.repo = repo
        self.commit_sha = commit_sha
        commit = repo[commit_sha.encode()]
        assert isinstance(commit, Commit)
        self.tree_id = commit.tree.decode()
        self.mtime = commit.commit_time  # not 0: Python's .pyc check compares source mtimes

    def _entry(self, path: str) -> tuple[int, bytes] | None:
        tree = self.repo[self.tree_id.encode()]
        parts = [p for p in path.split("/") if p]
        for i, part in enumerate(parts):
            if not isinstance(tree, Tree):
                return None
            try:
                mode, sha = tree[part.encode()]
            except KeyError:
                return None
            if i == len(parts) - 1:
                return mode, sha
            tree = self.repo[sha]
        return None

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

    def root_entries(self) -> dict[str, int]:
        """Names at the root of the tree and their git modes."""
        tree = self.repo[self.tree_id.encode()]
        assert isinstance(tree, Tree)
        return {e.path.decode("utf-8", "surrogateescape"): e.mode for e in tree.iteritems()}

    def digest(self, paths: Iterable[str]) -> str:
        """A hash of the given paths' names, modes and contents (absent paths count too)."""
        h = hashlib.sha256()
        for path in sorted(set(paths)):
            entry = self._entry(path)
            h.update(f"{path}\0{entry[0] if entry else '-'}\0{entry[1].decode() if entry else ''}\n".encode())
        return h.hexdigest()

    def files(self) -> Iterator[tuple[str, int, bytes]]:
        """(path, mode, blob sha) of every file and symlink; submodules are not fetched."""
        for entry in self.repo.object_store.iter_tree_contents(self.tree_id.encode()):
            mode = entry.mode
            if stat.S_ISDIR(mode) or mode == 0o160000:
                continue
            yield entry.path.decode("utf-8", errors="surrogateescape"), mode, entry.sha

    def tar(
        self,
        keep: Callable[[str], bool] | None = None,
        launcher: bool = True,
        prefix: str = "app/",
    ) -> IO[bytes]:
        """A tar (spooled to disk when large) with the tree under `app/`, owned by the app user,
        plus the launcher at `/start`. `keep(path)` filters files (e.g. `.slugignore`)."""
        out = tempfile.SpooledTemporaryFile(max_size=32 << 20)
        with tarfile.open(fileobj=out, mode="w") as tar:
            seen_dirs = {""}
            if prefix:
                _add_dir(tar, prefix.rstrip("/"))
                seen_dirs.add(prefix.rstrip("/"))
            total = 0
            for count, (path, mode, sha) in enumerate(self.files(), start=1):
                if keep is not None and not keep(path):
                    continue
                if count > MAX_TREE_FILES:
                    raise PaasError(f"the pushed tree has more than {MAX_TREE_FILES} files")
                total += self.repo.object_store[sha].raw_length()
                if total > MAX_TREE_BYTES:
                    raise PaasError(f"the pushed tree is larger than {MAX_TREE_BYTES >> 20} MiB unpacked")
                parts = path.split("/")
                for i in range(1, len(parts)):
                    d = prefix + "/".join(parts[:i])
                    if d not in seen_dirs:
                        _add_dir(tar, d)
                        seen_dirs.add(d)
                blob = self.repo.object_store[sha]
                assert isinstance(blob, Blob)
                if stat.S_ISLNK(mode):
                    info = tarfile.TarInfo(prefix + path)
                    info.type = tarfile.SYMTYPE
                    info.linkname = blob.data.decode("utf-8", errors="surrogateescape")
                    info.uid = info.gid = APP_UID
                    tar.addfile(info)
                else:
                    _add(tar, prefix + path, blob.data, 0o755 if mode & 0o111 else 0o644, mtime=self.mtime)
            if launcher:
                _add(tar, "start", launcher_bytes("start"), 0o755, uid=0)
        out.seek(0)
        return out


def launcher_bytes(name: str) -> bytes:
    return resources.files("paas.buildpacks").joinpath(f"launcher/{name}").read_bytes()


def read_file(repo: Repo, commit_sha: str, path: str) -> str | None:
    """A file of the commit's tree, or None."""
    return SourceTree(repo, commit_sha).read(path)


def source_tar(repo: Repo, commit_sha: str) -> IO[bytes]:
    return SourceTree(repo, commit_sha).tar()


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
