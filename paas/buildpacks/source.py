"""Turn a pushed commit into a tar for the build container, straight from the git object store."""

from __future__ import annotations

import io
import stat
import tarfile
import tempfile
from importlib import resources
from typing import IO

from dulwich.objects import Blob, Commit
from dulwich.repo import Repo

from paas.buildpacks.stack import APP_UID


def read_file(repo: Repo, commit_sha: str, path: str) -> str | None:
    """A file at the root of the commit's tree, or None."""
    commit = repo[commit_sha.encode()]
    assert isinstance(commit, Commit)
    tree = repo[commit.tree]
    try:
        _mode, sha = tree[path.encode()]  # type: ignore[index]
    except KeyError:
        return None
    blob = repo[sha]
    if not isinstance(blob, Blob):
        return None
    return blob.data.decode("utf-8", errors="replace")


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int, uid: int = APP_UID) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.uid = info.gid = uid
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def source_tar(repo: Repo, commit_sha: str) -> IO[bytes]:
    """A tar (spooled to disk when large) with the tree under `app/`, owned by the app user,
    plus the launcher at `/start`."""
    out = tempfile.SpooledTemporaryFile(max_size=32 << 20)
    commit = repo[commit_sha.encode()]
    assert isinstance(commit, Commit)
    with tarfile.open(fileobj=out, mode="w") as tar:
        root = tarfile.TarInfo("app")
        root.type = tarfile.DIRTYPE
        root.mode = 0o755
        root.uid = root.gid = APP_UID
        tar.addfile(root)
        seen_dirs = {"app"}
        for entry in repo.object_store.iter_tree_contents(commit.tree):
            path = entry.path.decode("utf-8", errors="surrogateescape")
            mode = entry.mode
            if stat.S_ISDIR(mode) or mode == 0o160000:  # submodules are not fetched
                continue
            parts = path.split("/")
            for i in range(1, len(parts)):
                d = "app/" + "/".join(parts[:i])
                if d not in seen_dirs:
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.uid = info.gid = APP_UID
                    tar.addfile(info)
                    seen_dirs.add(d)
            blob = repo.object_store[entry.sha]
            assert isinstance(blob, Blob)
            if stat.S_ISLNK(mode):
                info = tarfile.TarInfo("app/" + path)
                info.type = tarfile.SYMTYPE
                info.linkname = blob.data.decode("utf-8", errors="surrogateescape")
                info.uid = info.gid = APP_UID
                tar.addfile(info)
            else:
                _add(tar, "app/" + path, blob.data, 0o755 if mode & 0o111 else 0o644)
        launcher = resources.files("paas.buildpacks").joinpath("launcher/start").read_bytes()
        _add(tar, "start", launcher, 0o755, uid=0)
    out.seek(0)
    return out


def files_tar(files: dict[str, str], uid: int = APP_UID) -> bytes:
    """A small tar of text files (used for the process table written into the image)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({"/".join(n.split("/")[:i]) for n in files for i in range(1, n.count("/") + 1)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.uid = info.gid = uid
            tar.addfile(info)
        for name, text in files.items():
            _add(tar, name, text.encode(), 0o644, uid)
    return buf.getvalue()
