"""Pushes built to hurt the host: a tree bomb and a zip bomb are refused fast, in bounded memory.

The bombs are made with git plumbing (`hash-object`, `mktree`, `commit-tree`), so they are tiny on
the wire: the tree bomb is 14 objects naming 10^10 paths, the zip bomb a 512 MiB zero blob that
packs to about 510 KiB. bench/abuse.py pushes the same bombs and prints the figures.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import PaasServer, Result, unique_app

# Refusals are measured in seconds and the neighbour's rate against its own: nothing beside them.
pytestmark = [pytest.mark.e2e, pytest.mark.alone]

REFUSED_WITHIN = 10.0  # seconds
MAX_RSS = 256 << 20


def _git(cwd: Path, *args: str, stdin: int | None = None, text: str | None = None) -> str:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    data = text.encode() if text else None
    p = subprocess.run(["git", *args], cwd=cwd, env=env, stdin=stdin, input=data, capture_output=True)
    if p.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {p.stderr.decode()}")
    return p.stdout.decode().strip()


def _blob(repo: Path, data: str) -> str:
    return _git(repo, "hash-object", "-w", "--stdin", text=data)


def _tree(repo: Path, entries: list[tuple[str, str, str]]) -> str:
    """entries: (mode, sha, name); mktree wants them as `ls-tree` prints them."""
    kind = {"040000": "tree", "100644": "blob"}
    lines = "".join(f"{mode} {kind[mode]} {sha}\t{name}\n" for mode, sha, name in entries)
    return _git(repo, "mktree", text=lines)


def _commit(repo: Path, tree: str) -> Path:
    commit = _git(repo, "commit-tree", "-m", "bomb", tree)
    _git(repo, "update-ref", "refs/heads/main", commit)
    return repo


def _init(dest: Path) -> Path:
    dest.mkdir(parents=True)
    _git(dest, "init", "-q", "-b", "main")
    return dest


def make_tree_bomb(dest: Path, levels: int = 10, width: int = 10) -> Path:
    """`width` entries per level, all naming one subtree: width**levels paths, 14 objects, plus a
    requirements.txt so the Python buildpack (and its dependency layer) is chosen."""
    repo = _init(dest)
    leaf = _blob(repo, "x\n")
    sub = _tree(repo, [("100644", leaf, f"f{i}") for i in range(width)])
    for _ in range(levels - 1):
        sub = _tree(repo, [("040000", sub, f"d{i}") for i in range(width)])
    reqs = _blob(repo, "flask\n")
    dirs = [("040000", sub, f"d{i}") for i in range(width)]
    root = _tree(repo, [("100644", reqs, "requirements.txt"), *dirs])
    return _commit(repo, root)


def make_zip_bomb(dest: Path, size: int = 512 << 20) -> Path:
    """One blob of `size` zero bytes (it compresses about 1000:1) next to a Procfile."""
    repo = _init(dest)
    with subprocess.Popen(["head", "-c", str(size), "/dev/zero"], stdout=subprocess.PIPE) as zeros:
        big = _git(repo, "hash-object", "-w", "--stdin", stdin=zeros.stdout.fileno())  # type: ignore[union-attr]
    procfile = _blob(repo, "web: sleep 1000\n")
    return _commit(repo, _tree(repo, [("100644", procfile, "Procfile"), ("100644", big, "zeros")]))


class PackWatcher:
    """Samples the peak RSS (VmHWM) of the server's pack processes (one push at a time), from /proc."""

    def __init__(self, server_pid: int, app: str) -> None:
        self.server_pid = server_pid
        self.app = app
        self.peak = 0
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PackWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.alive():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
            self._stop.wait(0.02)

    def alive(self) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            # A pack process is spawned warm (`--warm`) and learns its app later: count every
            # pack process of the server (one push at a time here).
            if ppid == self.server_pid and b"paas.git_receiver.pack_process" in argv:
                found.append(int(entry))
                self.pids.add(int(entry))
        return found

    def kill_leftovers(self) -> None:
        """A push the server never refused keeps running after the client gave up: end it."""
        for pid in self.alive():
            try:
                os.kill(pid, 9)
            except OSError:
                pass


def push_bomb(
    server: PaasServer, repo: Path, app: str, timeout: float, force: bool = False
) -> tuple[Result | None, float, int]:
    """Push `repo` to `app`: (the result, None on timeout; seconds; peak RSS of the pack process)."""
    assert server.proc is not None
    start = time.monotonic()
    with PackWatcher(server.proc.pid, app) as watcher:
        try:
            args = ["push", *(["--force"] if force else []), f"paas:{app}", "main"]
            result: Result | None = server.git(repo, *args, timeout=timeout)
        except subprocess.TimeoutExpired:
            result = None
        elapsed = time.monotonic() - start
        deadline = time.monotonic() + 5
        while watcher.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        watcher.kill_leftovers()
    return result, elapsed, watcher.peak


def _assert_refused(result: Result | None, elapsed: float, peak: int, reason: str) -> None:
    assert result is not None, f"not refused within {REFUSED_WITHIN:g} s"
    assert result.returncode != 0, result.output
    assert reason in result.output, result.output
    assert "Traceback" not in result.output
    assert elapsed < REFUSED_WITHIN, f"refused after {elapsed:.1f} s"
    assert peak < MAX_RSS, f"the pack process peaked at {peak >> 20} MiB"


def _packs(server: PaasServer, app: str) -> list[str]:
    objects = server.data_dir / "repos" / f"{app}.git" / "objects"
    return sorted(p.name for p in objects.rglob("*") if p.is_file() and "info" not in p.parts)


def test_tree_bomb_is_refused_fast_in_bounded_memory(paas: PaasServer, tmp_path: Path) -> None:
    app = unique_app("treebomb")
    repo = make_tree_bomb(tmp_path / "bomb")
    result, elapsed, peak = push_bomb(paas, repo, app, timeout=REFUSED_WITHIN * 3)
    _assert_refused(result, elapsed, peak, "files and directories")
    assert paas.ssh("releases", app).stdout.count("Deploy") == 0
    assert _packs(paas, app) == [], "a refused push left its pack behind"


def test_zip_bomb_is_refused_fast_in_bounded_memory_and_what_runs_is_untouched(
    paas: PaasServer, tmp_path: Path
) -> None:
    app = unique_app("zipbomb")
    site = paas.make_repo("static-site", app)
    deployed = paas.git(site, "push", f"paas:{app}", "main")
    assert deployed.returncode == 0, deployed.output
    assert paas.get(f"{app}.localhost")[0] == 200
    packs = _packs(paas, app)
    repo = make_zip_bomb(tmp_path / "bomb")
    result, elapsed, peak = push_bomb(paas, repo, app, timeout=REFUSED_WITHIN * 3, force=True)
    _assert_refused(result, elapsed, peak, "push refused: an object inflates past 100 MiB")
    assert _packs(paas, app) == packs, "a refused push left its pack behind"
    assert paas.get(f"{app}.localhost")[0] == 200
    assert paas.ssh("releases", app).stdout.count("Deploy") == 1
