"""What quotas cost, in one run: the disk accounting pass and the checks with 100 apps, and a
deploy with quotas on against one with them off.

1. Accounting: 100 apps of one user in a store of their own, each with a git repo (a small app,
   cloned), a build cache volume with a pip-like cache in it, an image of its own above the
   stack, and 30 of them with a running process that wrote 1 MiB. Timed, --rounds times
   (medians): one usage pass (`disk_usage.measure`: every app's repo, cache, image layers,
   container writes, logs, storage), the stop decision after it (`enforce`), `quota:report` of
   that user, and the check a `ps:scale` makes (`require_room`, over the 100 apps); against
   `docker system df` in the same run (what dockerd takes to size its images, containers and
   volumes: `paas doctor`'s source), as the baseline.
2. Deploys: two `paas server`s side by side, each with the same 100 apps in its store. On one,
   a non-admin owns them and pushes (every quota checked, the disk pass every 2 s); on the other
   an admin does (not held) and the disk pass runs once, at start. The same code-only push of
   tests/e2e/apps/stdlib-web goes to each in turn, --runs times; `git push` returns once the new
   release serves. Prints medians and `ratio: on/off`.

    .venv/bin/python bench/quotas.py [--apps 100] [--rounds 5] [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paas.buildpacks.stack import DEFAULT_STACK  # noqa: E402
from paas.core import names  # noqa: E402
from paas.core.context import Context  # noqa: E402
from paas.services import disk_usage, quotas  # noqa: E402
from paas.settings import Settings  # noqa: E402
from paas.store import now  # noqa: E402
from tests.e2e.conftest import APPS_DIR, PaasServer, free_port, shutdown  # noqa: E402

os.environ.setdefault("PAAS_HTTPS_PORT", str(free_port()))
os.environ.setdefault("PAAS_HTTPS_BIND", "127.0.0.1")
MIB = 1 << 20
PROFILE = False


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **IDENTITY})


IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def seed_store(ctx: Context, owner: str, admin: bool, count: int) -> list[str]:
    """`count` deployed apps of `owner` in the store (web=1), nothing on dockerd."""
    user_id = ctx.store.add_key_user(owner, admin, now())
    out = []
    for i in range(count):
        name = f"q{i:03d}-{uuid.uuid4().hex[:4]}"
        app = ctx.store.create_app(name, owner_id=user_id)
        build = ctx.store.create_build(app.id, uuid.uuid4().hex, owner)
        ctx.store.finish_build(build, "succeeded", "", None, {"web": "x", "worker": "y"}, "python")
        release = ctx.store.create_release(app.id, build, {}, {"web": 1, "worker": 0}, "Deploy", owner)
        ctx.store.set_release_status(release.id, "succeeded")
        ctx.store.set_formation(app.id, {"web": 1, "worker": 0})
        out.append(name)
    return out


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def seed_engine(ctx: Context, apps: list[str], running: int, work: Path) -> list:
    """Each app: a cloned repo, a cache volume with files, an image above the stack; `running`
    of them: a process container that wrote 1 MiB. Returns what to remove afterwards."""
    client = ctx.docker
    instance = ctx.settings.instance_id
    template = work / "template"
    shutil.copytree(APPS_DIR / "flask-hello", template)
    git(template, "init", "-q", "-b", "main")
    git(template, "add", "-A")
    git(template, "commit", "-qm", "app")
    made: list = []
    for i, app in enumerate(apps):
        git(
            work,
            "clone",
            "-q",
            "--bare",
            "--no-hardlinks",
            str(template),
            str(names.repo_path(ctx.settings, app)),
        )
        volume = client.volumes.create(
            names.cache_volume(instance, app), labels={names.LABEL_INSTANCE: instance}
        )
        made.append(volume)
        cache = Path(volume.attrs["Mountpoint"])
        for n in range(20):
            (cache / f"wheel-{n}.whl").write_bytes(os.urandom(50 * 1024))
        base = client.containers.create(DEFAULT_STACK.image, command=["true"])
        base.put_archive("/", _tar({f"app/file-{n}": os.urandom(10 * 1024) for n in range(10)}))
        image = base.commit(repository=names.image_repository(app), tag=f"b1-{instance}")
        base.remove(force=True)
        made.append(image)
        if i < running:
            labels = names.app_labels(
                instance, app, names.ROLE_PROCESS, **{names.LABEL_TYPE: "web", names.LABEL_INDEX: "1"}
            )
            made.append(
                client.containers.run(
                    image.id,
                    ["sh", "-c", "head -c 1048576 /dev/urandom > /tmp/written; exec sleep 3600"],
                    detach=True,
                    labels=labels,
                    name=f"paas-bench-{app}",
                )
            )
    return made


def remove(ctx: Context, made: list) -> None:
    client = ctx.docker
    for thing in reversed(made):
        try:
            if hasattr(thing, "tags"):
                client.images.remove(thing.id, force=True)
            else:
                thing.remove(force=True)
        except Exception as exc:  # noqa: BLE001 - best effort
            print(f"  (could not remove {thing}: {exc})")


def timed(fn, rounds: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def show(label: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    print(f"  {label:<44} median {statistics.median(ms):8.1f} ms  (min {ms[0]:.1f}, max {ms[-1]:.1f})")


def accounting(count: int, rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="paas-bench-quotas-"))
    ctx = Context.open(Settings(data_dir=work / "data"), actor="host", is_admin=True, on_host=True)
    made: list = []
    try:
        apps = seed_store(ctx, "tenant", False, count)
        started = time.monotonic()
        made = seed_engine(ctx, apps, running=min(30, count), work=work)
        took = time.monotonic() - started
        print(f"accounting: {count} apps of one user ({min(30, count)} running), seeded in {took:.0f} s")
        tenant = ctx.store.get_user("tenant")
        assert tenant is not None
        held = ctx.for_actor("tenant", False, user_id=tenant.id)
        app = ctx.store.get_app(apps[0])
        assert app is not None
        started = time.perf_counter()
        measured = disk_usage.measure(ctx)  # the first: every container inspected, every history read
        show("first usage pass (nothing cached yet)", [time.perf_counter() - started])
        total = sum(sum(p.values()) for p in measured.values())
        parts = {p: sum(m[p] for m in measured.values()) for p in disk_usage.PARTS}
        print(
            f"  measured {total / MIB:.1f} MiB: " + ", ".join(f"{k} {v / MIB:.1f}" for k, v in parts.items())
        )
        baseline = timed(lambda: ctx.docker.df(), rounds)
        show("baseline: docker system df", baseline)
        passes = timed(lambda: disk_usage.measure(ctx), rounds)
        show("usage pass (measure, all apps)", passes)
        if PROFILE:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(disk_usage.measure, ctx)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        show("stop decision (enforce)", timed(lambda: disk_usage.enforce(ctx, measured), rounds))
        show("quota:report of the user", timed(lambda: quotas.usage(ctx, tenant), rounds))
        show(
            "ps:scale's check (require_room)",
            timed(lambda: quotas.require_room(held, app, {"web": 1}), rounds * 10),
        )
        print(f"  pass / docker system df: {statistics.median(passes) / statistics.median(baseline):.2f}x")
    finally:
        remove(ctx, made)
        shutil.rmtree(work, ignore_errors=True)


def _server(root: Path, owner: str, admin: bool, apps: int, disk_seconds: str) -> PaasServer:
    root.mkdir(parents=True)
    server = PaasServer(root)
    server.env["PAAS_DISK_CHECK_SECONDS"] = disk_seconds
    server.env["PAAS_QUOTA_APPS"] = str(apps + 10)  # room for the 100 apps: every check is still made
    server.env["PAAS_QUOTA_PROCESSES"] = str(apps + 10)
    server.env["PAAS_QUOTA_MEMORY"] = f"{apps + 10}g"
    added = server.host("ssh-keys:add", "root-admin", str(server.key) + ".pub")  # the first: an admin
    assert added.returncode == 0, added.output
    ctx = Context.open(Settings(data_dir=server.data_dir))
    seed_store(ctx, owner, admin, apps)
    ctx.store.close()
    key = root / f"key-{owner}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    ctx = Context.open(Settings(data_dir=server.data_dir), actor="host", is_admin=True, on_host=True)
    user = ctx.store.get_user(owner)
    assert user is not None
    from paas.services import keys

    keys.add_key(ctx, owner, (root / f"key-{owner}.pub").read_text())
    ctx.store.close()
    server.start()
    server.env["GIT_SSH_COMMAND"] = (
        f"ssh -F /dev/null -p {server.ssh_port} -i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no"
        f" -o UserKnownHostsFile={root / 'known_hosts'} -o BatchMode=yes -o LogLevel=ERROR"
    )
    return server


def push(server: PaasServer, src: Path, app: str) -> float:
    started = time.monotonic()
    done = subprocess.run(
        ["git", "push", "-q", f"paas@127.0.0.1:{app}", "main"],
        cwd=src,
        env=server.env,
        capture_output=True,
        text=True,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    return took


def deploys(apps: int, runs: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="paas-bench-quotas-deploy-"))
    servers: list[PaasServer] = []
    try:
        on = _server(work / "on", "tenant", False, apps, "2")
        servers.append(on)
        off = _server(work / "off", "boss", True, apps, "100000")
        servers.append(off)
        sources = {}
        for label, server in (("on", on), ("off", off)):
            app = f"bench-{label}-{uuid.uuid4().hex[:4]}"
            src = server.make_repo("stdlib-web", app)
            push(server, src, app)  # the first deploy, untimed
            sources[label] = (server, src, app)
        times: dict[str, list[float]] = {"on": [], "off": []}
        for run in range(runs):
            for label in ("on", "off") if run % 2 == 0 else ("off", "on"):
                server, src, app = sources[label]
                (src / "VERSION").write_text(f"{run + 2}\n")
                git(src, "commit", "-qam", f"v{run + 2}")
                times[label].append(push(server, src, app))
        print(f"deploys: code-only pushes of stdlib-web, {runs} each, {apps} apps in each store")
        for label, what in (
            ("on", "quotas on (non-admin owner, disk pass every 2 s)"),
            ("off", "quotas off (admin, no disk pass)"),
        ):
            t = sorted(times[label])
            print(f"  {what:<52} median {statistics.median(t):.2f} s  (min {t[0]:.2f}, max {t[-1]:.2f})")
        print(f"ratio: on/off {statistics.median(times['on']) / statistics.median(times['off']):.2f}")
    finally:
        for server in servers:
            shutdown(server)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="timed passes of the accounting")
    parser.add_argument("--runs", type=int, default=5, help="code-only pushes per side")
    parser.add_argument("--skip-deploys", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile one usage pass")
    args = parser.parse_args()
    global PROFILE
    PROFILE = args.profile
    accounting(args.apps, args.rounds)
    if not args.skip_deploys:
        deploys(args.apps, args.runs)


if __name__ == "__main__":
    main()
