"""`paas server`: the long-running process (SSH receiver + managed nginx)."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time

import docker

from paas.commands import CommandEnv, command
from paas.core.context import Context
from paas.core.output import configure_logging
from paas.errors import PaasError
from paas.git_receiver import repo_head
from paas.git_receiver.server import SSHServer
from paas.services import disk_usage, logfiles, reconcile, routing
from paas.web.process import DashboardProcess


# Registered when this module is imported (paas.cli does): paas.commands never imports it, since
# the server runs the SSH door, which dispatches every command.
@command("server", "Run the SSH receiver and the managed nginx (foreground).", host_only=True)
def server(env: CommandEnv) -> int:
    return run_server(env)


def run_server(env: CommandEnv) -> int:
    configure_logging(logging.INFO)
    ctx = env.ctx
    settings = ctx.settings
    stop = threading.Event()  # tells the other threads; set from the main loop only
    signalled: list[int] = []
    # A handler must not touch threading primitives: it runs on the main thread, which may be
    # inside stop.wait() holding the same lock (a real deadlock seen here). It only records.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: signalled.append(signum))

    # Load the plugins now: a broken one stops the server here, not a deploy later.
    loaded = ctx.plugins.info
    env.echo("-----> plugins: " + (", ".join(f"{p.name} {p.version}" for p in loaded.values()) or "none"))
    # Apps pushed before HEAD followed the deploy branch: `git clone` would check out nothing.
    for app, ref in repo_head.fix_all(settings.repos_dir).items():
        env.echo(f"-----> {app}: HEAD now names {ref.decode()}")
    reconcile.guard_egress(ctx, rebuild=True)  # before any container of ours starts
    router = routing.router(ctx)
    router.start()
    web = DashboardProcess(settings) if settings.web_port else None
    ssh = SSHServer(ctx)
    try:
        if web is not None:
            web.start()  # boots while we reconcile; waited for below
        host, port = ssh.listen()
    except (OSError, PaasError) as exc:
        if web is not None:
            web.stop()
        router.stop()
        if isinstance(exc, PaasError):
            raise
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
    threading.Thread(target=_disk_loop, args=(ctx, stop), daemon=True, name="disk").start()
    env.echo(f"-----> SSH receiver listening on {host}:{port}")
    adopted = " (adopted the nginx a previous server left running)" if router.adopted else ""
    env.echo(
        f"-----> nginx router listening on {router.listen}{adopted} (apps at http://<app>.{settings.domain})"
    )
    if web is not None:
        try:
            web.wait_ready()
            routing.sync_dashboard_route(ctx, web.upstream, web.streams_upstream)
        except PaasError:
            ssh.shutdown()
            web.stop()
            router.stop()
            raise
        suffix = "" if settings.http_port == 80 else f":{settings.http_port}"
        env.echo(
            f"-----> dashboard listening on http://{web.listen} and http://{settings.dashboard_host}{suffix}"
        )
    else:
        router.set_dashboard(settings.dashboard_host, None)
    env.echo(f"-----> data in {settings.data_dir}")
    ctx.plugins.call_post("paas_server_started", ctx=ctx, stop=stop)  # their threads: metrics, deliveries
    env.echo("=====> paas is ready")
    while not signalled:
        time.sleep(0.2)
        if not router.alive():
            env.err.write("error: nginx exited; see its error.log\n")
            ssh.shutdown()
            if web is not None:
                web.stop()
            return 1
        if web is not None and not web.alive() and web.restart_if_dead():
            env.err.write(f"warning: the dashboard exited; restarted it (log: {settings.web_log_path})\n")
    stop.set()
    # nginx stays: apps stay routed while no server runs, and the next start adopts it, so a
    # restart or an upgrade drops no request (`paas router:stop` stops it for good).
    env.echo("-----> stopping (app containers and the router keep running)")
    ssh.shutdown()
    if web is not None:
        web.stop()
    return 0


def _disk_loop(ctx: Context, stop: threading.Event) -> None:
    """Measure every app's disk and stop what passes its owner's quota, at start and every
    PAAS_DISK_CHECK_SECONDS (a thread of its own: walking folders never delays a reconcile)."""
    log = logging.getLogger("paas.disk")
    while True:
        try:
            disk_usage.check(ctx)
        except Exception:  # keep measuring whatever happened in one pass
            log.exception("disk pass failed")
        if stop.wait(ctx.settings.disk_check_seconds):
            return


def _reconcile_loop(ctx: Context, stop: threading.Event) -> None:
    """Converge every few seconds: crashed processes, changed host ports, interrupted deploys;
    rotate the logs every PAAS_LOG_ROTATE_SECONDS."""
    log = logging.getLogger("paas.reconcile")
    rotated = 0.0
    while not stop.wait(ctx.settings.reconcile_seconds):
        try:
            reconcile.reconcile_all(ctx)
        except Exception:  # keep healing whatever happened in one pass
            log.exception("reconcile pass failed")
        if time.monotonic() - rotated >= ctx.settings.log_rotate_seconds:
            rotated = time.monotonic()
            try:
                logfiles.rotate(ctx.settings)
            except (PaasError, OSError, subprocess.SubprocessError) as exc:
                log.warning("log rotation: %s", exc)
