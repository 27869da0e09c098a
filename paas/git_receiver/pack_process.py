"""`python -m paas.git_receiver.pack_process receive-pack|upload-pack <app>`

One process per push, as git itself does: pack ingestion and the build it triggers never hold
the SSH server's GIL. It speaks the git protocol on stdin/stdout (dulwich) and builds and deploys
from the `update` hook, so a failed build rejects the ref and moves nothing. What a push may cost
(memory, inflated bytes, the packs it leaves) is bounded by `pack_guard`.

Importing what a push needs (dulwich, the docker SDK, the services) takes about 0.3 s, most of
the start of a code-only push: the SSH server keeps one process warm (`--warm`: imports done,
waiting for its request as one JSON line on stdin, see `Spawner`) and hands it the next request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any

from dulwich.protocol import SIDE_BAND_CHANNEL_PROGRESS, Protocol
from dulwich.repo import Repo
from dulwich.server import Backend, Handler, HookError, ReceivePackHandler, UploadPackHandler

from paas.buildpacks.result import BuildFailed
from paas.buildpacks.source import SourceTree
from paas.core import engine, timing
from paas.core.context import Context
from paas.core.manifest import AppJsonError
from paas.core.output import BuildLog, configure_logging
from paas.core.validation import app_name, printable, terminal_text
from paas.errors import PaasError
from paas.git_receiver import pack_guard, repo_head
from paas.plugins import plugins
from paas.services import access, disk, git, push
from paas.services.deploy import DeployFailed
from paas.services.locks import AppLock
from paas.services.release_phase import PostdeployFailed
from paas.settings import Settings

ZERO_SHA = b"0" * 40
STARTED = time.time()  # the push's clock (reset when a warm process gets its request)
WARM = "--warm"
MODES = ("receive-pack", "upload-pack")
logger = logging.getLogger("paas.push")


class _OneRepo(Backend):
    """The repo was chosen (and validated) by the SSH server; never open another path."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def open_repository(self, path: str) -> Repo:  # type: ignore[override]
        return self.repo


class DeployHook:
    """dulwich `update` hook: build and deploy the pushed commit before the ref moves."""

    def __init__(self, ctx: Context, app: str, repo: Repo) -> None:
        self.ctx = ctx
        self.app = app
        self.repo = repo
        self.handler: Handler | None = None
        self.lock = AppLock(ctx, app)
        self.deployed: str | None = None  # one deploy per push
        self.deployed_sha: bytes | None = None
        self.branches: dict[bytes, bytes | None] = {}  # other branches a plugin took: where they go
        self.branch_locks: list[AppLock] = []  # theirs, held until the refs have moved
        self.after_failed = False  # a postdeploy task failed: the ref moves, the push exits 1

    def _progress(self, text: str) -> None:
        """A line for the pusher's terminal as `remote: ...`: the build's and the release
        phase's output are the app's, so their control characters go as escapes."""
        handler = self.handler
        if handler is not None and handler.has_capability(b"side-band-64k"):
            safe = terminal_text(text)
            handler.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS, safe.encode("utf-8", "replace"))

    def ref_moved(self) -> bool:
        """Whether this push moved its deploy branch or a branch a plugin took (else its pack is
        garbage)."""
        refs = self.repo.refs.as_dict()
        if self.deployed is not None and refs.get(self.deployed.encode()) == self.deployed_sha:
            return True
        return any(sha is not None and refs.get(ref) == sha for ref, sha in self.branches.items())

    def execute(self, ref_name: bytes, old_sha: bytes, new_sha: bytes) -> tuple[Any, Any]:
        try:
            branches = git.deploy_branches(self.ctx, self.app)
            deploys = push.check_push_ref(
                ref_name.decode("utf-8", "replace"), new_sha == ZERO_SHA, self.deployed, branches
            )
        except PaasError as exc:
            raise HookError(printable(str(exc))) from None
        if not deploys:
            return self._other_branch(ref_name, old_sha, new_sha)
        if self.deployed is None:
            timing.mark(self.app, "pack", STARTED)
        log = BuildLog(self._progress)
        try:
            # Access may have gone since the SSH server let the push in: check before any work.
            access.authorize(self.ctx, self.app, "git:push")
            # Before the lock: a tree that passes the walk limits never holds it, nor waits for it.
            SourceTree(self.repo, new_sha.decode()).check()
            # Held until the ref has moved (released in main), so the next push builds on it.
            if not self.lock.held:
                self.lock.acquire(
                    on_wait=lambda: log.step(f"Waiting for another deploy of {self.app} to end")
                )
            current = self.repo.refs.as_dict().get(ref_name)
            push.check_ref_unmoved(ref_name.decode("utf-8", "replace"), old_sha, current, ZERO_SHA)
            self.deployed = ref_name.decode("utf-8", "replace")
            self.deployed_sha = new_sha
            with timing.phase(self.app, "push"):
                push.deploy_push(self.ctx, self.app, self.repo, new_sha.decode(), log)
        except HookError:
            raise
        except PostdeployFailed:  # said in the log; the release is live, so the ref moves
            self.after_failed = True
        except BuildFailed:
            raise HookError("build failed") from None
        except DeployFailed:
            raise HookError("deploy failed") from None
        except AppJsonError as exc:  # said once, in the log: scripts count Dokku's lines
            log.error(str(exc))
            raise HookError("app.json refused") from None
        except PaasError as exc:
            log.error(str(exc))
            raise HookError(printable(str(exc))) from None
        except Exception:
            logger.exception("push to %s failed", self.app)
            log.error("internal error during the deploy (see the server log)")
            raise HookError("internal error") from None
        return None, None

    def _other_branch(self, ref_name: bytes, old_sha: bytes, new_sha: bytes) -> tuple[Any, Any]:
        """A branch that does not deploy the app: the plugins may take it (review apps), each
        under its own lock; the app's own lock is not needed."""
        log = BuildLog(self._progress)
        deleting = new_sha == ZERO_SHA
        try:
            access.authorize(self.ctx, self.app, "git:push")  # before any work or lock
            if not deleting:  # the same walk limits as a deploy, before any work
                SourceTree(self.repo, new_sha.decode()).check()
            # One push of a branch at a time, until its ref has moved (as the deploy branch's).
            lock = AppLock(self.ctx, f"{self.app}@{hashlib.sha256(ref_name).hexdigest()[:16]}")
            lock.acquire(on_wait=lambda: log.step("Waiting for another push of this branch to end"))
            self.branch_locks.append(lock)
            said = push.push_branch(
                self.ctx,
                self.app,
                ref_name,
                None if old_sha == ZERO_SHA else old_sha.decode(),
                None if deleting else new_sha.decode(),
                self.repo,
                log,
            )
        except PostdeployFailed:  # a review app's: live, so its branch moves
            self.after_failed = True
            said = ""
        except BuildFailed:
            raise HookError("build failed") from None
        except DeployFailed:
            raise HookError("deploy failed") from None
        except PaasError as exc:
            log.error(str(exc))
            raise HookError(printable(str(exc))) from None
        except Exception:
            logger.exception("push of %r to %s failed", ref_name, self.app)
            log.error("internal error during the push (see the server log)")
            raise HookError("internal error") from None
        self.branches[ref_name] = None if deleting else new_sha
        if said:
            log.done(said)
        return None, None


def _limit_push_size(repo: Repo, limit: int) -> None:
    """receive.maxInputSize: dulwich refuses a pack bigger than this while it is received."""
    config = repo.get_config()
    try:
        current = config.get((b"receive",), b"maxInputSize")
    except KeyError:
        current = None
    if current != str(limit).encode():
        config.set((b"receive",), b"maxInputSize", str(limit).encode())
        config.write_to_path()


def _head_follows(repo: Repo, app: str, pushed: str | None) -> None:
    """Under the app's lock, once the refs moved (or were refused): HEAD names the deployed branch.
    A failure is only logged: the push is over, and server start tries again."""
    if pushed is None:
        return
    try:
        repo_head.follow_deploy_branch(repo, pushed.encode())
    except Exception:
        logger.exception("could not point HEAD of %s at %s", app, pushed)


def _pusher(settings: Settings) -> Context:
    """The pushing user, read fresh from the store (the SSH server passes their id in env); one
    removed meanwhile becomes nobody, whom `access` refuses."""
    ctx = Context.open(settings)
    raw_id = os.environ.get("PAAS_ACTOR_ID", "")
    user = ctx.store.get_user_by_id(int(raw_id)) if raw_id.isdigit() else None
    if user is not None:
        return ctx.for_actor(user.name, user.is_admin, user_id=user.id)
    if not raw_id and os.environ.get("PAAS_ACTOR_ADMIN") == "1":  # an admin without a user record
        return ctx.for_actor(os.environ.get("PAAS_ACTOR") or None, True)
    return ctx.for_actor(os.environ.get("PAAS_ACTOR") or None, False, user_id=-1)


class Spawner:
    """The SSH server's pack processes: one is spawned ahead (at start, and after each request
    it served) and imports while nobody waits; a request takes it, or spawns one cold when there
    is none (concurrent pushes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warm: subprocess.Popen | None = None
        self._closed = False

    @staticmethod
    def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "paas.git_receiver.pack_process", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def prepare(self) -> None:
        """Have a warm process waiting for the next request."""
        with self._lock:
            if not self._closed and (self._warm is None or self._warm.poll() is not None):
                self._warm = self._spawn([WARM], dict(os.environ))

    def start(
        self, mode: str, app: str, actor: str | None, is_admin: bool, user_id: int | None = None
    ) -> subprocess.Popen:
        """A pack process serving `mode` for `app` on its stdin/stdout, for the acting user."""
        with self._lock:
            proc, self._warm = self._warm, None
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            request = {"mode": mode, "app": app, "actor": actor or "", "admin": is_admin, "id": user_id}
            try:
                proc.stdin.write(json.dumps(request).encode() + b"\n")
                proc.stdin.flush()
                return proc
            except OSError:  # it died since: spawn one
                proc.kill()
                proc.wait()
        env = {
            **os.environ,
            "PAAS_ACTOR": actor or "",
            "PAAS_ACTOR_ID": str(user_id or ""),
            "PAAS_ACTOR_ADMIN": "1" if is_admin else "0",
        }
        return self._spawn([mode, app], env)

    def close(self) -> None:
        """End the warm process (EOF on its stdin ends it)."""
        with self._lock:
            self._closed = True
            proc, self._warm = self._warm, None
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _warm_request(argv: list[str]) -> list[str] | None:
    """In a warm process: wait for the request (one JSON line from the SSH server), then run as
    if spawned for it. None when the server went away first."""
    global STARTED
    line = sys.stdin.buffer.readline()
    if not line:
        return None
    request = json.loads(line)
    STARTED = time.time()
    os.environ["PAAS_ACTOR"] = str(request["actor"])
    os.environ["PAAS_ACTOR_ADMIN"] = "1" if request["admin"] is True else "0"
    os.environ["PAAS_ACTOR_ID"] = str(request["id"]) if isinstance(request.get("id"), int) else ""
    return [argv[0], str(request["mode"]), str(request["app"])]


def _prepare_ahead() -> None:
    """In a warm process, while it waits for its request (a thread: a request that comes first
    never waits for it): what every push needs and no request decides (the plugins: entry
    points and imports, ~0.1 s; dockerd's data folder for the disk check, 0.1-0.5 s). A failure
    or a late finish is only a lost head start: the push does it itself."""
    try:
        settings = Settings.from_env()
        plugins(set(settings.disabled_plugins))
        client = engine.client(timeout=10)
        try:
            disk.learn_docker_root(client)
        finally:
            client.close()
    except Exception:
        logger.debug("preparing ahead of a push failed", exc_info=True)


def main(argv: list[str]) -> int:
    if argv[1:] == [WARM]:
        threading.Thread(target=_prepare_ahead, name="prepare-ahead", daemon=True).start()
        request = _warm_request(argv)
        if request is None:
            return 0
        argv = request
    if len(argv) != 3 or argv[1] not in MODES:
        sys.stderr.write("usage: pack_process receive-pack|upload-pack <app>\n")
        return 2
    settings = Settings.from_env()
    settings.ensure_dirs()
    configure_logging(
        logging.INFO, str(settings.log_path), "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    app = app_name(argv[2])
    pack_guard.limit_memory(settings.push_memory)
    repo_path = settings.repos_dir / f"{app}.git"
    repo = Repo(str(repo_path))
    inf, outf = sys.stdin.buffer, sys.stdout.buffer

    def write(data: bytes) -> None:
        outf.write(data)
        outf.flush()

    proto = Protocol(inf.read, write)
    try:
        if argv[1] == "upload-pack":
            UploadPackHandler(_OneRepo(repo), ["/"], proto).handle()
            return 0
        ctx = _pusher(settings)
        timing.mark(app, "startup", STARTED)
        _limit_push_size(repo, settings.max_push_bytes)
        push_lock = pack_guard.PushLock(repo_path)
        push_lock.acquire_shared()
        ingest = pack_guard.GuardedIngest(repo, settings)
        hook = DeployHook(ctx, app, repo)
        repo.hooks = {"update": hook}  # replaces dulwich's shell hooks (see DESIGN.md)
        handler = ReceivePackHandler(_OneRepo(repo), ["/"], proto)
        hook.handler = handler
        try:
            handler.handle()
        finally:
            _head_follows(repo, app, hook.deployed)
            hook.lock.release()
            for lock in hook.branch_locks:
                lock.release()
            refused = not hook.ref_moved()
            pack_guard.after_push(repo_path, push_lock, ingest.new_pack if refused else None)
            push_lock.release()
        return 1 if hook.after_failed else 0
    finally:
        repo.close()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except PaasError as exc:
        sys.stderr.write(f"error: {printable(str(exc))}\n")
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:  # a protocol error from a broken client, or a bug: one line, details logged
        logger.exception("git request failed")
        why = printable(str(exc)[:200])
        sys.stderr.write(f"error: git request failed: {exc.__class__.__name__}: {why}\n")
        sys.exit(1)
