"""Tar archives from users (`git:from-archive`, `certs:add`), checked before anything reads them.

Nothing here extracts to disk: a member is only ever read into memory (and from there into git
objects), so no path of an archive names a file of the host. The checks still refuse what a
careless extraction would turn into an escape, each with one line (Dokku's words, which scripts
match): absolute paths, `..`, symlinks whose target is absolute or leaves the tree, entries below a
symlink, hard links to nothing in the archive, devices and fifos, and archives past a size, an
entry count, a file size or an unpacked size. The `.git` folders of a checkout are left out.
"""

from __future__ import annotations

import posixpath
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from paas.errors import PaasError

COMPRESSIONS = {"tar": "r:", "tar.gz": "r:gz"}


class ArchiveRefused(PaasError):
    """The archive breaks a rule; nothing was read from it."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int  # the archive as sent
    max_files: int  # entries, folders included
    max_file_bytes: int  # one file, unpacked
    max_total_bytes: int  # every file, unpacked


@dataclass(frozen=True)
class Entry:
    """What a checked member becomes: a regular file (its mode) or a symlink (its target)."""

    path: str
    member: tarfile.TarInfo
    link_target: str | None = None  # a symlink's target, checked to stay in the tree

    @property
    def executable(self) -> bool:
        return bool(self.member.mode & 0o111)


def spool(stream: IO[bytes], max_bytes: int) -> IO[bytes]:
    """The archive in a temporary file, refused as soon as it passes `max_bytes`."""
    out = tempfile.TemporaryFile()
    total = 0
    while True:
        chunk = stream.read(1 << 16)
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            out.close()
            raise ArchiveRefused(f"Archive exceeds maximum allowed size of {max_bytes} bytes")
        out.write(chunk)
    if total == 0:
        out.close()
        raise ArchiveRefused("the archive is empty: send a tar on stdin (or give a URL)")
    out.seek(0)
    return out


def _clean(name: str) -> str:
    """The member's path without `./` and doubled slashes (`..` and absolute names are refused
    before this)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts)


def _escapes(path: str, target: str) -> bool:
    """Whether a symlink at `path` pointing at `target` resolves outside the tree."""
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return joined == ".." or joined.startswith("../")


def check(tar: tarfile.TarFile, limits: Limits) -> list[Entry]:
    """Every member of `tar` checked (headers only, no content read), as the files to keep."""
    members = []
    try:
        for m in tar:  # headers only; stop early, before a flood of them is all in memory
            members.append(m)
            if len(members) > limits.max_files:
                raise ArchiveRefused(
                    f"Archive contains more than {limits.max_files} entries, "
                    f"which exceeds the maximum of {limits.max_files}"
                )
    except (tarfile.TarError, EOFError, OSError):
        raise ArchiveRefused("the archive is damaged or not a tar archive") from None
    for m in members:  # the path checks first, over the whole archive, as Dokku's order
        if m.name.startswith("/"):
            raise ArchiveRefused("Archive contains entries with absolute paths")
    for m in members:
        if ".." in m.name.split("/"):
            raise ArchiveRefused("Archive contains entries with parent directory traversal")
    for m in members:
        if m.issym():
            if m.linkname.startswith("/"):
                raise ArchiveRefused("Archive contains symlinks with absolute targets")
            if _escapes(_clean(m.name), m.linkname):
                raise ArchiveRefused("Archive contains symlinks pointing outside extraction directory")
    entries: dict[str, Entry] = {}
    links: set[str] = set()
    total = 0
    for m in members:
        path = _clean(m.name)
        if not path or ".git" in path.split("/"):  # git refuses a .git anywhere in a tree
            continue
        parents = path.split("/")[:-1]
        if any("/".join(parents[: i + 1]) in links for i in range(len(parents))):
            raise ArchiveRefused("Archive contains entries inside a symlinked folder")
        if m.isdir():
            continue
        if m.issym():
            links.add(path)
            entries[path] = Entry(path, m, m.linkname)
            continue
        if m.islnk():  # a hard link: the content of a file seen earlier in the archive
            source = entries.get(_clean(m.linkname))
            if source is None or source.link_target is not None:
                raise ArchiveRefused("Archive contains hard links to files outside the archive")
            entries[path] = Entry(path, source.member)
            total += source.member.size
        elif m.isfile():
            if m.size > limits.max_file_bytes:
                raise ArchiveRefused(f"Archive contains a file larger than {limits.max_file_bytes} bytes")
            entries[path] = Entry(path, m)
            total += m.size
        else:
            raise ArchiveRefused(
                "Archive contains special files (devices or fifos): only files, folders and links"
            )
        if total > limits.max_total_bytes:
            raise ArchiveRefused(f"Archive unpacks to more than {limits.max_total_bytes} bytes")
    return list(entries.values())


def strip_common_folder(entries: list[Entry]) -> list[Entry]:
    """An archive of one folder (`app-1.2/...`, as GitHub and `git archive --prefix` make them)
    is that folder's content."""
    tops = {e.path.split("/", 1)[0] for e in entries}
    if len(tops) != 1 or any("/" not in e.path for e in entries):
        return entries
    cut = len(next(iter(tops))) + 1
    return [Entry(e.path[cut:], e.member, e.link_target) for e in entries]


def open_tar(spooled: IO[bytes], kind: str) -> tarfile.TarFile:
    """The spooled archive as a tar of the given kind (`tar`, `tar.gz`)."""
    if kind not in COMPRESSIONS:
        raise ArchiveRefused(f"unsupported archive type {kind!r}: use {' or '.join(COMPRESSIONS)}")
    try:
        return tarfile.open(fileobj=spooled, mode=COMPRESSIONS[kind])  # type: ignore[call-overload]
    except (tarfile.TarError, EOFError, OSError):
        raise ArchiveRefused(f"the archive is not a {kind} archive (--archive-type tar|tar.gz)") from None


def contents(tar: tarfile.TarFile, entries: list[Entry]) -> Iterator[tuple[Entry, bytes]]:
    """Each checked entry with its bytes (a symlink's: its target)."""
    for entry in entries:
        if entry.link_target is not None:
            yield entry, entry.link_target.encode()
            continue
        fh = tar.extractfile(entry.member)
        data = fh.read(entry.member.size + 1) if fh is not None else b""
        if len(data) != entry.member.size:
            raise ArchiveRefused(f"the archive is truncated at {entry.path}")
        yield entry, data
