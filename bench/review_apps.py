"""What a review app costs, in one run, against what the same work costs an ordinary app.

One `paas server`; tests/e2e/apps/stdlib-web (no dependencies: the time is the platform's). Each
round, in turn:

1. create: the first push of a new app's main (baseline) against the first push of a branch of
   the parent (a review app: its name, the parent's config copied, a build and a deploy);
2. update: a code-only push of the parent's main (baseline) against one of the branch;
3. destroy: `apps:destroy` of the new app (baseline) against `git push paas :branch`.

`git push` and `ssh` return once the work is done. Prints medians over --runs rounds and
`ratio:` review/baseline for each.

    PAAS_BUILD_CA_BUNDLE=... .venv/bin/python bench/review_apps.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import PaasServer, free_port, shutdown  # noqa: E402

os.environ.setdefault("PAAS_HTTPS_PORT", str(free_port()))
os.environ.setdefault("PAAS_HTTPS_BIND", "127.0.0.1")


def timed(fn, *args: object) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    result = fn(*args)
    took = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"failed: {result.output}")
    return took


def commit(server: PaasServer, src: Path, text: str) -> None:
    (src / "VERSION").write_text(text)
    for args in (["add", "-A"], ["commit", "-qm", text]):
        if server.git(src, *args).returncode != 0:
            raise SystemExit(f"git {args} failed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="paas-bench-review-"))
    server = PaasServer(root)
    times: dict[str, list[float]] = {k: [] for k in ("new", "branch", "main", "update", "destroy", "delete")}
    try:
        server.start_with_key()
        parent, src = server.deploy_new_repo("stdlib-web", "bench")
        if server.ssh("review-apps:enable", parent).returncode != 0:
            raise SystemExit("review-apps:enable failed")
        for n in range(args.runs):
            # create
            fresh = f"new-{uuid.uuid4().hex[:6]}"
            other = server.make_repo("stdlib-web", fresh)
            server.git(other, "remote", "add", "paas", f"paas:{fresh}")
            times["new"].append(timed(server.git, other, "push", "paas", "main"))
            branch = f"feature-{n}"
            server.git(src, "checkout", "-q", "-b", branch, "main")
            commit(server, src, f"branch {n}")
            times["branch"].append(timed(server.git, src, "push", "paas", branch))
            # update
            server.git(src, "checkout", "-q", "main")
            commit(server, src, f"main {n}")
            times["main"].append(timed(server.git, src, "push", "paas", "main"))
            server.git(src, "checkout", "-q", branch)
            commit(server, src, f"branch {n} again")
            times["update"].append(timed(server.git, src, "push", "paas", branch))
            # destroy
            times["destroy"].append(timed(server.ssh, "apps:destroy", fresh, "--confirm", fresh))
            times["delete"].append(timed(server.git, src, "push", "paas", f":{branch}"))
            server.git(src, "checkout", "-q", "main")
            print(f"round {n + 1}: " + " ".join(f"{k}={v[-1]:.2f}s" for k, v in times.items()), flush=True)
    finally:
        shutdown(server)
        shutil.rmtree(root, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    for what, review, base in (
        ("create", "branch", "new"),
        ("update", "update", "main"),
        ("destroy", "delete", "destroy"),
    ):
        print(
            f"{what}: review app {med[review]:.2f} s, ordinary app {med[base]:.2f} s"
            f" (medians of {args.runs}); ratio: {med[review] / med[base]:.2f}"
        )


if __name__ == "__main__":
    main()
