"""How fast, and in how much memory, hostile pushes are refused; an honest push as the baseline.

Starts a `paas server` (loopback high ports, a temporary dir) and pushes, each to a new app:
- baseline: the `static-site` test app plus 510 KiB of random bytes (the zip bomb's wire size),
  built and deployed;
- tree bomb: 14 objects, 10 levels x 10 entries sharing one subtree (10^10 paths), requirements.txt;
- zip bomb: a 512 MiB zero blob (510 KiB packed) next to a Procfile.
It prints the push's wall time, the time the client alone spends making the pack (part of the
former), the pack process's peak RSS (VmHWM sampled from /proc), and the line the pusher got.
Targets: each bomb refused in <= 5 s with <= 256 MiB peak.
Then the neighbour: requests/s another app serves through the router while an app fork-bombs
itself (1500 forks held 15 s, the `abuse` test app), against the same app alone, same run.
Target: >= 0.8x.
Not a test: it prints figures (set BENCH_TIMEOUT to wait longer for code that never refuses).
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import APPS_DIR, running_server, unique_app  # noqa: E402
from tests.e2e.test_abuse import make_tree_bomb, make_zip_bomb, push_bomb  # noqa: E402

TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "120"))


def _reason(output: str) -> str:
    """The line that says why: a build error (`remote:  !`), else git's error, else the last line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for marker in ("remote:  !", "error:", "rejected"):
        for ln in lines:
            if marker in ln:
                return ln.removeprefix("remote:").strip()[:110]
    return lines[-1][:110] if lines else ""


def client_packing(repo: Path) -> float:
    """Seconds the client alone spends making the pack (C git inflates and deflates the blob)."""
    start = time.monotonic()
    subprocess.run(
        ["git", "pack-objects", "--revs", "--stdout", "-q"],
        cwd=repo,
        input=b"main\n",
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.monotonic() - start


def _rate(paas, host: str, seconds: float, threads: int = 4) -> float:  # type: ignore[no-untyped-def]
    """Requests per second answered 200 by `host` through the router, over `seconds`."""
    done = threading.Event()
    counts = [0] * threads

    def worker(i: int) -> None:
        while not done.is_set():
            try:
                if paas.get(host)[0] == 200:
                    counts[i] += 1
            except (OSError, http.client.HTTPException):
                pass

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for th in pool:
        th.start()
    time.sleep(seconds)
    done.set()
    for th in pool:
        th.join()
    return sum(counts) / seconds


def neighbour(paas) -> None:  # type: ignore[no-untyped-def]
    calm, noisy = paas.deploy_new_app("stdlib-web", "bench"), paas.deploy_new_app("abuse", "bench")
    alone = _rate(paas, f"{calm}.localhost", 8)
    bomb = threading.Thread(target=lambda: paas.get(f"{noisy}.localhost", "/fork?n=1500&hold=15"))
    bomb.start()
    time.sleep(0.5)
    during = _rate(paas, f"{calm}.localhost", 8)
    bomb.join()
    forked = paas.get(f"{noisy}.localhost", "/")[0]
    print(f"neighbour alone {alone:7.1f} req/s; while the other app fork-bombs {during:7.1f} req/s")
    print(f"ratio: {during / alone:.2f} (target >= 0.80); the bombing app answers {forked} afterwards")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-abuse-") as tmp, running_server(Path(tmp), "b") as paas:
        work = Path(tmp) / "src"
        honest = work / "honest"
        shutil.copytree(APPS_DIR / "static-site", honest)
        (honest / "noise.bin").write_bytes(os.urandom(510 << 10))
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "honest"]):
            assert paas.git(honest, *args).returncode == 0
        cases = [
            ("baseline (honest push)", honest),
            ("tree bomb", make_tree_bomb(work / "tree-bomb")),
            ("zip bomb", make_zip_bomb(work / "zip-bomb")),
        ]
        print(f"{'push':24} {'result':8} {'seconds':>8} {'client':>7} {'peak RSS':>9}  what the pusher saw")
        for label, repo in cases:
            packing = client_packing(repo)
            result, elapsed, peak = push_bomb(paas, repo, unique_app("bench"), TIMEOUT)
            if result is None:
                status, why = "TIMEOUT", f"no answer within {TIMEOUT:g} s (pack process killed)"
            else:
                status = "ok" if result.returncode == 0 else "refused"
                why = _reason(result.output) if result.returncode else "deployed"
            print(f"{label:24} {status:8} {elapsed:8.2f} {packing:7.2f} {peak / (1 << 20):5.0f} MiB  {why}")
        print("seconds: the whole push as the pusher waits; client: git making the pack alone, on the client")
        print("targets: bombs refused in <= 5 s, pack process <= 256 MiB peak")
        neighbour(paas)
    return 0


if __name__ == "__main__":
    sys.exit(main())
