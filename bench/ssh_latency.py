"""Round trip of `ssh paas apps:list` against plain OpenSSH running `true`, in one run.

Starts a `paas server` and an OpenSSH server (both on loopback high ports, temporary dirs),
then times 50 rounds of each with the same client, key type and cipher negotiation, and prints
p50/p95 and the ratio. Target: paas <= 1.5x OpenSSH. Not a test: it prints figures.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import free_port, running_server  # noqa: E402

ROUNDS = 50


def start_sshd(root: Path, pubkey: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    host_key = root / "sshd_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    auth = root / "authorized_keys"
    auth.write_text(pubkey.read_text())
    auth.chmod(0o600)
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile {auth}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nPidFile none\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=open(root / "sshd.log", "w")
    )
    for _ in range(100):
        try:
            import socket

            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def pct(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-ssh-") as tmp, running_server(Path(tmp), "bench") as paas:
        root = Path(tmp)
        sshd, sshd_port = start_sshd(root, Path(str(paas.key) + ".pub"))
        try:
            base = [
                "ssh",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                f"UserKnownHostsFile={root}/kh",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-i",
                str(paas.key),
            ]
            paas_cmd = [*base, "-p", str(paas.ssh_port), "paas@127.0.0.1", "apps:list"]
            openssh_cmd = [*base, "-p", str(sshd_port), "root@127.0.0.1", "true"]
            timed(paas_cmd), timed(openssh_cmd)  # warm up, accept host keys
            ours, theirs = [], []
            for _ in range(ROUNDS):  # interleaved, so load changes hit both alike
                ours.append(timed(paas_cmd))
                theirs.append(timed(openssh_cmd))
        finally:
            sshd.terminate()
            sshd.wait()
    p50o, p95o, p50t, p95t = pct(ours, 50), pct(ours, 95), pct(theirs, 50), pct(theirs, 95)
    print(f"rounds: {ROUNDS} each")
    print(f"ssh paas apps:list  p50 {p50o * 1000:7.1f} ms  p95 {p95o * 1000:7.1f} ms")
    print(f"ssh openssh true    p50 {p50t * 1000:7.1f} ms  p95 {p95t * 1000:7.1f} ms")
    print(f"ratio (paas/openssh) p50 {p50o / p50t:.2f}x  p95 {p95o / p95t:.2f}x  (target <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
