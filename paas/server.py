"""`paas server`: the long-running process (SSH receiver + managed nginx)."""

from __future__ import annotations

import logging
import signal
import threading

from paas.commands import CommandEnv
from paas.errors import PaasError
from paas.git_receiver.server import SSHServer
from paas.services import deploy


def run_server(env: CommandEnv) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ctx = env.ctx
    settings = ctx.settings
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    router = ctx.router
    nginx = router.start()
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
        deploy.sync_routes(ctx)
    except PaasError as exc:
        env.err.write(f"warning: could not sync routes: {exc}\n")
    env.echo(f"-----> SSH receiver listening on {host}:{port}")
    env.echo(f"-----> nginx router listening on {router.listen} (apps at http://<app>.{settings.domain})")
    env.echo(f"-----> data in {settings.data_dir}")
    env.echo("=====> paas is ready")
    while not stop.wait(0.5):
        if nginx.poll() is not None:
            env.err.write(f"error: nginx exited with status {nginx.returncode}\n")
            ssh.shutdown()
            return 1
    env.echo("-----> stopping (app containers keep running)")
    ssh.shutdown()
    router.stop()
    return 0
