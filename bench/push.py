"""Push speed: a 100 MB repository pushed to our SSH server versus C git over OpenSSH, same run.

One repository (--files small text files and --large big binary ones, about 100 MB in all, little
of it compressible) is pushed, after one untimed push each, for each of --runs rounds,
  (a) to a fresh app of a real `paas server` (loopback ports, its own data dir) over our paramiko
      SSH server and receive-pack. The branch pushed is `bench`, which does not deploy: the update
      hook refuses it once the pack is in, so the figure is transport + ingestion + the status
      report, not a build (the refusal is checked, so a push that failed earlier cannot count);
  (b) to a fresh bare repository through a private OpenSSH sshd on a loopback port, running C
      `git-receive-pack` (index-pack, connectivity check, ref update).
Both are timed from the start of `git push` until it returns. The last line is `ratio: <x.xx>`
(C git time / our time, medians: bigger is better; target >= 0.7). Not a test.

    .venv/bin/python bench/push.py [--runs 5] [--files 20000] [--large 3]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import PaasServer, free_port, shutdown  # noqa: E402

# HTTPS on a free loopback port: 443 may be taken on a shared machine (the servers copy os.environ).
os.environ.setdefault("PAAS_HTTPS_PORT", str(free_port()))
os.environ.setdefault("PAAS_HTTPS_BIND", "127.0.0.1")

SSHD = "/usr/sbin/sshd"
SMALL_BYTES = 2500
LARGE_BYTES = 16 << 20
REFUSAL = "only main or master deploys"


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def make_repo(path: Path, files: int, large: int) -> int:
    """A repository of many small files and a few large ones; returns its size in bytes."""
    path.mkdir(parents=True)
    total = 0
    for i in range(files):
        d = path / "src" / f"d{i % 200:03d}"
        d.mkdir(parents=True, exist_ok=True)
        data = base64.b64encode(os.urandom(SMALL_BYTES * 3 // 4)) + b"\n"
        (d / f"f{i:05d}.txt").write_bytes(data)
        total += len(data)
    for i in range(large):
        data = os.urandom(LARGE_BYTES)
        (path / f"blob{i}.bin").write_bytes(data)
        total += len(data)
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b"}
    env["GIT_COMMITTER_EMAIL"] = "b@b"
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "bench"]):
        r = git(path, *args, env=env)
        if r.returncode != 0:
            raise SystemExit(f"git {args[0]} failed: {r.stderr}")
    return total


class OpenSSHPath:
    """(b): a private sshd on loopback, as this user, running C git-receive-pack."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True)
        self.root = root
        self.port = free_port()
        host_key, self.key = root / "host_ed25519", root / "id_ed25519"
        for k in (host_key, self.key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
        shutil.copy(f"{self.key}.pub", root / "authorized_keys")
        config = root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
            "UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nLogLevel ERROR\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
        self.env = {
            **os.environ,
            "GIT_SSH_COMMAND": (
                f"ssh -p {self.port} -i {self.key} -o IdentitiesOnly=yes -o BatchMode=yes "
                f"-o StrictHostKeyChecking=no -o UserKnownHostsFile={root / 'known_hosts'} -o LogLevel=ERROR"
            ),
        }
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(
                [*self.env["GIT_SSH_COMMAND"].split(), "127.0.0.1", "true"], capture_output=True
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        raise SystemExit("the private sshd did not come up")

    def push(self, src: Path) -> float:
        bare = self.root / f"bare-{uuid.uuid4().hex[:6]}.git"
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
        user = os.environ.get("USER") or "root"
        t0 = time.monotonic()
        r = git(src, "push", "-q", f"ssh://{user}@127.0.0.1{bare}", "main", env=self.env)
        elapsed = time.monotonic() - t0
        if r.returncode != 0:
            raise SystemExit(f"push over OpenSSH failed:\n{r.stderr}")
        shutil.rmtree(bare)
        return elapsed

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class PaasPath:
    """(a): our SSH server and receive-pack; the pushed branch does not deploy."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True)
        self.server = PaasServer(root).start_with_key("bench")

    def push(self, src: Path) -> float:
        app = f"push-{uuid.uuid4().hex[:6]}"
        t0 = time.monotonic()
        r = git(src, "push", f"paas:{app}", "main:bench", env=self.server.env)
        elapsed = time.monotonic() - t0
        if REFUSAL not in r.stderr:
            raise SystemExit(f"push to paas did not get as far as the update hook:\n{r.stderr}")
        return elapsed

    def close(self) -> None:
        shutdown(self.server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=20000, help="small files (2.5 KB each)")
    parser.add_argument("--large", type=int, default=3, help="large files (16 MiB each)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="paas-bench-push-"))
    ours = theirs = None
    try:
        print("-----> Making the repository", flush=True)
        size = make_repo(root / "src", args.files, args.large)
        print(f"       {args.files} small + {args.large} large files, {size / 1e6:.0f} MB", flush=True)
        ours, theirs = PaasPath(root / "paas"), OpenSSHPath(root / "openssh")
        print("-----> One untimed push each (warms the page cache and both servers)", flush=True)
        theirs.push(root / "src")
        ours.push(root / "src")
        times_ours, times_c = [], []
        for i in range(args.runs):
            times_c.append(theirs.push(root / "src"))
            times_ours.append(ours.push(root / "src"))
            print(
                f"-----> Run {i + 1}/{args.runs}: ours {times_ours[-1]:.2f} s, C git {times_c[-1]:.2f} s",
                flush=True,
            )
        mine, c_git = statistics.median(times_ours), statistics.median(times_c)
        print(f"\n{'push of ' + f'{size / 1e6:.0f} MB (s)':28}{'ours':>8}{'C git':>8}")
        print(f"{'median':28}{mine:>8.2f}{c_git:>8.2f}")
        print(f"Target ratio >= 0.7: {'met' if c_git / mine >= 0.7 else 'NOT met'}")
        print(f"ratio: {c_git / mine:.2f}")
        return 0
    finally:
        for path in (ours, theirs):
            if path is not None:
                path.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
