"""restic, the backup engine: encryption, deduplicated incremental snapshots, `check`, and local,
SFTP and S3-compatible repositories. We never write a backup format of our own.

The repository and the key reach restic through its environment (RESTIC_REPOSITORY,
RESTIC_PASSWORD_FILE), never its argv or a shell; credentials of an S3 target are the server's
own environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), passed through.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from paas.plugin_api import PaasError

# restic's repository syntaxes we offer: a local folder, SFTP, an S3-compatible server, a REST server
REMOTE_RE = re.compile(r"^(sftp|s3|rest):[A-Za-z0-9@:/._~%+=,\[\]-]{1,500}$")
LOCAL_RE = re.compile(r"^/[A-Za-z0-9/._@+=,-]{0,500}$")
SNAPSHOT_RE = re.compile(r"^[0-9a-f]{8,64}$")
PROGRESS_SECONDS = 2.0
LOCK_WAIT = 120.0
Emit = Callable[[str], None]


def check_target(target: str, data_dir: Path) -> str:
    """A repository restic can open, given by an admin: a local folder (absolute, outside the
    data dir: a backup on the disk it guards is no backup) or sftp:, s3:, rest:."""
    target = target or ""
    if REMOTE_RE.fullmatch(target):
        return target
    if not LOCAL_RE.fullmatch(target) or "/../" in target + "/" or "//" in target:
        raise PaasError(
            f"invalid backup target {shown(target)!r}: an absolute folder, or sftp:user@host:/path, "
            "s3:https://host/bucket/path, rest:https://host/path"
        )
    folder = os.path.realpath(target)
    data = os.path.realpath(data_dir)
    if folder == data or folder.startswith(data + os.sep) or data.startswith(folder + os.sep):
        raise PaasError(f"backup target {target} is in the data dir ({data_dir}): put it on another disk")
    return folder


def shown(target: str) -> str:
    """A target as shown to people: a password in a URL masked."""
    return re.sub(r"(://[^:/@]+):[^@/]+@", r"\1:***@", target)


@dataclass(frozen=True)
class Snapshot:
    id: str
    short_id: str
    time: str
    hostname: str
    tags: tuple[str, ...]


class Locked(Exception):
    """Another restic holds the repository's lock."""


def binary() -> str:
    found = shutil.which("restic")
    if found is None:
        raise PaasError("restic is not installed: apt-get install restic (make up installs it)")
    return found


class Restic:
    """One repository opened with one key."""

    def __init__(self, repository: str, password_file: Path, cache_dir: Path) -> None:
        self.repository = repository
        self.password_file = password_file
        self.cache_dir = cache_dir

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env.update(
            RESTIC_REPOSITORY=self.repository,
            RESTIC_PASSWORD_FILE=str(self.password_file),
            RESTIC_CACHE_DIR=str(self.cache_dir),
            RESTIC_PROGRESS_FPS="0.5",
        )
        return env

    def _fail(self, what: str, stderr: str) -> PaasError:
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        text = " ".join(lines)
        if "wrong password" in text:
            why = "the backup key does not open it (another key, or not a paas backup)"
        elif "unable to open config file" in text or "Is there a repository at" in text:
            why = "there is no backup repository there"
        elif "already locked" in text:
            why = (
                "another restic holds its lock (a backup or a prune); try again (`restic unlock` if it died)"
            )
        elif "no matching ID found" in text or "no snapshot matched" in text or "invalid id" in text:
            why = "no such backup"
        else:
            why = lines[-1].removeprefix("Fatal: ") if lines else "no output"
        return PaasError(f"{what} at {shown(self.repository)} failed: {why[:400]}")

    def run(self, args: list[str], what: str, cwd: Path | None = None, timeout: float = 24 * 3600) -> str:
        """restic with `args`; a repository locked by another restic (a list beside a prune) is
        tried again for up to LOCK_WAIT seconds (restic 0.14 has no --retry-lock)."""
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                proc = subprocess.run(
                    [binary(), *args],
                    env=self._env(),
                    cwd=cwd,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                raise PaasError(
                    f"{what} at {shown(self.repository)} took longer than {int(timeout)} s"
                ) from None
            if proc.returncode == 0:
                return proc.stdout
            if "already locked" not in proc.stderr or time.monotonic() > deadline:
                raise self._fail(what, proc.stderr)
            time.sleep(2)

    def exists(self) -> bool:
        """Whether the repository opens with the key (False: there is none; a wrong key raises)."""
        try:
            self.run(["cat", "config"], "opening the backup repository", timeout=300)
            return True
        except PaasError as exc:
            if "there is no backup repository there" in str(exc):
                return False
            raise

    def init(self) -> None:
        self.run(["init"], "creating the backup repository", timeout=300)

    def backup(self, paths: list[str], cwd: Path, tags: list[str], emit: Emit) -> tuple[str, dict]:
        """A snapshot of `paths` (relative to `cwd`, kept relative); progress lines go to `emit`
        every few seconds. Returns (snapshot id, restic's summary). Waits for a prune's lock."""
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                return self._backup(paths, cwd, tags, emit)
            except Locked:
                if time.monotonic() > deadline:
                    raise self._fail("the backup", "repository is already locked") from None
                time.sleep(2)

    def _backup(self, paths: list[str], cwd: Path, tags: list[str], emit: Emit) -> tuple[str, dict]:
        args = ["backup", "--json"]
        for tag in tags:
            args += ["--tag", tag]
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        proc = subprocess.Popen(
            [binary(), *args, "--", *paths],
            env=self._env(),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        err: list[str] = []
        reader = threading.Thread(target=lambda: err.extend(proc.stderr or []), daemon=True)
        reader.start()
        summary: dict = {}
        last = 0.0
        for line in proc.stdout or []:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            kind = msg.get("message_type")
            if kind == "status" and msg.get("total_bytes") and time.monotonic() - last >= PROGRESS_SECONDS:
                last = time.monotonic()
                done, total = msg.get("bytes_done", 0), msg.get("total_bytes", 0)
                pct = msg.get("percent_done", 0.0) * 100
                emit(f"{pct:5.1f}%  {mib(done)} of {mib(total)} read, {msg.get('files_done', 0)} files")
            elif kind == "summary":
                summary = msg
        code = proc.wait()
        reader.join(5)
        if code == 3 and summary.get("snapshot_id"):  # made, but some files vanished while read
            for line in err[-5:]:
                emit(f"warning: {line.strip()[:300]}")
        elif code != 0 or not summary.get("snapshot_id"):
            if "already locked" in "".join(err):
                raise Locked()
            raise self._fail("the backup", "".join(err) or f"restic exited with {code}")
        return summary["snapshot_id"], summary

    def snapshots(self, tag: str) -> list[Snapshot]:
        out = self.run(["snapshots", "--json", "--tag", tag], "listing the backups", timeout=600)
        found = []
        for s in json.loads(out or "[]"):
            short = s.get("short_id", s["id"][:8])
            tags = tuple(s.get("tags") or ())
            found.append(Snapshot(s["id"], short, s["time"], s.get("hostname", ""), tags))
        return sorted(found, key=lambda s: s.time, reverse=True)

    def check(self, read_data: bool = False) -> None:
        args = ["check"] + (["--read-data"] if read_data else [])
        self.run(args, "checking the backup repository")

    def restore(self, snapshot: str, target: Path, include: list[str] | None = None) -> None:
        """The snapshot into `target`, each file's content verified against the snapshot after it
        is written (restic's --verify); ownership and modes as they were (we run as root)."""
        args = ["restore", snapshot, "--target", str(target), "--verify"]
        for pattern in include or ():
            args += ["--include", pattern]
        self.run(args, "restoring the backup")

    def forget(self, tag: str, keep: int) -> None:
        """Keep the newest `keep` snapshots with `tag`, drop the others and the data only they held."""
        self.run(
            ["forget", "--tag", tag, "--group-by", "", "--keep-last", str(keep), "--prune"],
            "pruning old scheduled backups",
        )


def mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"
