"""`paas server`: the long-running process (SSH receiver + managed nginx)."""

from __future__ import annotations

import logging
import signal
import threading
import time

import docker

from paas.commands import CommandEnv
from paas.errors import PaasError
from paas.git_receiver.server import SSHServer
from paas.services import reconcile
from paas.services.context import Context


def run_server(env: CommandEnv) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ctx = env.ctx
    settings = ctx.settings
    stop = threading.Event()  # tells the other threads; set from the main loop only
    signalled: list[int] = []
    # A handler must not touch threading primitives: it runs on the main thread, which may be
    # inside stop.wait() holding the same lock (a real deadlock seen here). It only records.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: signalled.append(signum))

    router = ctx.router
    router.start()
    ssh = SSHServer(ctx)
    try:
        host, port = ssh.listen()
    except OSError as exc:
        router.stop()
        raise PaasError(
            f"cannot listen for SSH on {settings.ssh_bind}:{settings.ssh_port}: {exc.strerror}"
        ) from None
    threading.Thread(target=ssh.serve_forever, daemon=True, name="ssh-accept").start()
    try:
        for app, actions in reconcile.reconcile_all(ctx).items():
            env.echo(f"-----> reconciled {app}: {'; '.join(actions)}")
    except (PaasError, docker.errors.DockerException) as exc:
        env.err.write(f"warning: could not reconcile: {exc}\n")
    threading.Thread(target=_reconcile_loop, args=(ctx, stop), daemon=True, name="reconcile").start()
    env.echo(f"-----> SSH receiver listening on {host}:{port}")
    adopted = " (adopted the nginx a previous server left running)" if router.adopted else ""
    env.echo(
        f"-----> nginx router listening on {router.listen}{adopted} (apps at http://<app>.{settings.domain})"
    )
    env.echo(f"-----> data in {settings.data_dir}")
    env.echo("=====> paas is ready")
    while not signalled:
        time.sleep(0.2)
        if not router.alive():
            env.err.write("error: nginx exited; see its error.log\n")
            ssh.shutdown()
            return 1
    stop.set()
    env.echo("-----> stopping (app containers keep running)")
    ssh.shutdown()
    router.stop()
    return 0


def _reconcile_loop(ctx: Context, stop: threading.Event) -> None:
    """Converge every few seconds: crashed processes, changed host ports, interrupted deploys."""
    log = logging.getLogger("paas.reconcile")
    while not stop.wait(ctx.settings.reconcile_seconds):
        try:
            reconcile.reconcile_all(ctx)
        except Exception:  # keep healing whatever happened in one pass
            log.exception("reconcile pass failed")
