"""What a push may cost the host before anything is built: memory, inflated bytes, disk.

A pack is small on the wire and large inflated: 510 KiB of pack is a 512 MiB zero blob, and the
1 GiB wire cap (receive.maxInputSize) would let about a terabyte through. So:

- the pack process runs under RLIMIT_DATA (PAAS_PUSH_MEMORY): heap, not the packs dulwich maps
  read-only (RLIMIT_AS would count those, and refuse large honest repos);
- every entry's declared size is checked before it is inflated: an object (or a delta's target)
  over PAAS_MAX_OBJECT_BYTES, or a pack over PAAS_MAX_PUSH_INFLATED_BYTES in all, is refused;
- the pack of a refused push is deleted, and an app repo with many packs is repacked.

dulwich has no hook between reading an entry's header and inflating it; `read_zlib_chunks` is where
both meet (it gets the declared size before it inflates a byte), so ingestion swaps in a checking
wrapper for its duration. tests/unit/test_push_limits.py fails if dulwich stops calling it.

Deleting a pack is only safe when no other push of the repo is in flight (its pack may be the very
one this push stored, deduplicated): every receive-pack holds the repo's push lock shared for its
whole life, and pruning or repacking needs it exclusive, taken without waiting or not at all.
"""

from __future__ import annotations

import fcntl
import logging
import os
import resource
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import dulwich.pack
from dulwich.repo import Repo

from paas.core import names
from paas.errors import PaasError
from paas.settings import Settings

logger = logging.getLogger("paas.push")

LOCK_NAME = names.REPO_PUSH_LOCK
LOCK_WAIT = 300.0  # seconds a push waits for a repack of its repo to end
REPACK_PACKS = 10  # repack an app repo once it holds this many packs
REPACK_TIMEOUT = 900
PACK_SUFFIXES = (".pack", ".idx", ".rev", ".bitmap", ".keep", ".mtimes")


class PushRefused(OSError):
    """A pack the host will not unpack. An OSError, so dulwich reports it as the unpack status
    (`error: remote unpack failed: <why>`) and moves no ref."""


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


def limit_memory(limit: int) -> None:
    """Cap this process's heap (soft RLIMIT_DATA); a MemoryError then ends the push, not the host."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


class InflateBudget:
    """The inflated sizes a pack's entries declare, charged before each is inflated."""

    def __init__(self, max_object: int, max_total: int) -> None:
        self.max_object = max_object
        self.max_total = max_total
        self.total = 0

    def check_object(self, size: int) -> None:
        if size > self.max_object:
            raise PushRefused(
                f"push refused: an object inflates past {_mib(self.max_object)} (PAAS_MAX_OBJECT_BYTES)"
            )

    def charge(self, size: int) -> None:
        self.check_object(size)
        self.total += size
        if self.total > self.max_total:
            raise PushRefused(
                f"push refused: the pack inflates past {_mib(self.max_total)} (PAAS_MAX_PUSH_INFLATED_BYTES)"
            )


def delta_target_size(chunks: list[bytes]) -> int:
    """A git delta starts with two sizes (source, target), 7 bits a byte, low bits first."""
    head = bytearray()
    for chunk in chunks:
        head += chunk[: 20 - len(head)]
        if len(head) >= 20:
            break
    pos = 0
    sizes = []
    for _ in range(2):
        value = shift = 0
        while True:
            if pos >= len(head):
                raise PushRefused("push refused: a delta in the pack is truncated")
            byte = head[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        sizes.append(value)
    return sizes[1]


@contextmanager
def inflation_checked(budget: InflateBudget) -> Iterator[None]:
    """While a pack is read: refuse an entry by its declared size before inflating it."""
    original = dulwich.pack.read_zlib_chunks

    def checked(read_some: Callable[[int], bytes], unpacked: Any, *args: Any, **kwargs: Any) -> bytes:
        is_delta = unpacked.pack_type_num in dulwich.pack.DELTA_TYPES
        if is_delta:
            budget.check_object(unpacked.decomp_len)  # the delta's own instructions
        else:
            budget.charge(unpacked.decomp_len)
        unused = original(read_some, unpacked, *args, **kwargs)
        if is_delta:  # resolved later, in memory: charge what it will build
            budget.charge(delta_target_size(unpacked.decomp_chunks))
        return unused

    dulwich.pack.read_zlib_chunks = checked  # type: ignore[assignment]
    try:
        yield
    finally:
        dulwich.pack.read_zlib_chunks = original


def _open_temp_packs(objects_dir: Path) -> set[Path]:
    """dulwich's temporary pack files (objects/tmp_pack_*) this process has open."""
    found = set()
    prefix = str(objects_dir / "tmp_pack_")
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(prefix):
            found.add(Path(target))
    return found


def remove_pack(pack_path: Path) -> None:
    """A pack and its companions (.idx, .rev, ...)."""
    base = str(pack_path).removesuffix(".pack")
    for suffix in PACK_SUFFIXES:
        try:
            os.unlink(base + suffix)
        except FileNotFoundError:
            pass


class GuardedIngest:
    """One push's pack ingestion: checked sizes, a memory error turned into a refusal, and the
    temporary file of a refused pack removed. Remembers the pack it stored, if new."""

    def __init__(self, repo: Repo, settings: Settings) -> None:
        self.store = repo.object_store
        self.objects_dir = Path(self.store.path)  # type: ignore[attr-defined]
        self.pack_dir = Path(self.store.pack_dir)  # type: ignore[attr-defined]
        self.budget = InflateBudget(settings.max_object_bytes, settings.max_push_inflated_bytes)
        self.memory = settings.push_memory
        self._add_thin_pack = self.store.add_thin_pack  # type: ignore[attr-defined]
        self.new_pack: Path | None = None
        self.store.add_thin_pack = self.add_thin_pack  # type: ignore[attr-defined]

    def add_thin_pack(
        self,
        read_all: Callable[[int], bytes],
        read_some: Callable[[int], bytes] | None,
        progress: Callable[..., None] | None = None,
        *,
        max_input_size: int | None = None,
    ) -> Any:
        before = set(self.pack_dir.glob("*.pack"))
        temps: list[Path] = []  # the temporary file is there (and open) once reading starts
        spotted = False

        def spotting(read: Callable[[int], bytes]) -> Callable[[int], bytes]:
            def read_and_spot(n: int) -> bytes:
                nonlocal spotted
                if not spotted:
                    spotted = True
                    temps.extend(_open_temp_packs(self.objects_dir))
                return read(n)

            return read_and_spot

        some = spotting(read_some) if read_some is not None else None
        try:
            with inflation_checked(self.budget):
                pack = self._add_thin_pack(spotting(read_all), some, progress, max_input_size=max_input_size)
        except BaseException as exc:
            for path in temps:
                path.unlink(missing_ok=True)
            if isinstance(exc, MemoryError):
                raise PushRefused(
                    f"push refused: unpacking needs over {_mib(self.memory)} of memory (PAAS_PUSH_MEMORY)"
                ) from None
            raise
        path = Path(pack.data.path)
        if path not in before and path.exists():
            self.new_pack = path
        return pack


class PushLock:
    """The repo's push lock: shared by every receive-pack for its life, exclusive to delete packs."""

    def __init__(self, repo_path: Path) -> None:
        self.path = repo_path / LOCK_NAME
        self._fh: IO[str] | None = None

    def acquire_shared(self, wait: float = LOCK_WAIT) -> None:
        fh = open(self.path, "a")  # noqa: SIM115 - held for the life of the push
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    fh.close()
                    raise PaasError("the app's repository is being repacked; push again soon") from None
                time.sleep(0.1)
        self._fh = fh

    def try_exclusive(self) -> bool:
        """Without waiting: True when no other push of this repo is in flight."""
        if self._fh is None:
            return False
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def fileno(self) -> int:
        assert self._fh is not None
        return self._fh.fileno()

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def after_push(repo_path: Path, lock: PushLock, refused_pack: Path | None) -> None:
    """Under the exclusive lock, if it is free: delete the refused push's pack, and repack a repo
    that holds many packs (in the background: the pusher does not wait; the repack holds the lock
    until it ends). Failures are logged: the push itself is over."""
    if not lock.try_exclusive():
        return
    try:
        if refused_pack is not None:
            remove_pack(refused_pack)
            logger.info("removed the pack of a refused push: %s", refused_pack.name)
        packs = list((repo_path / "objects" / "pack").glob("*.pack"))
        if len(packs) >= REPACK_PACKS:
            subprocess.Popen(
                [
                    "timeout",
                    str(REPACK_TIMEOUT),
                    "git",
                    "-c",
                    "pack.threads=1",
                    "-c",
                    "pack.windowMemory=64m",
                    "repack",
                    "-a",
                    "-d",
                    "-q",
                ],
                cwd=repo_path,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(lock.fileno(),),  # the lock stays held until the repack exits
                start_new_session=True,
            )
            logger.info("repacking %s (%d packs)", repo_path.name, len(packs))
    except OSError:
        logger.exception("could not clean up %s after a push", repo_path.name)
