"""Deploys started from the dashboard or the API, run in the background of the web worker.

A scale, restart, config change or rollback waits for health checks: run inside a request it
held a gunicorn thread for its whole run, and a few at once hung the dashboard for everyone.
A view starts a job instead and answers at once. Jobs run on a small pool of threads in the
same process (the app's lock still queues changes to one app) and write their output, line by
line, to a file under the data dir: any worker can show it and the evented stream server
streams it (`follow`), so nothing of it travels in a cookie. The output file is locked while
its job lives, so a job whose process died (a dashboard restart) reads as interrupted.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO

from paas.core import names
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import NotFound, PaasError, Throttled
from paas.services import access
from paas.store import App, now

log = logging.getLogger("paas.jobs")

JOB_ID_RE = re.compile(r"^[0-9a-f]{16}$")
RUNNERS = 4  # jobs running at once per web worker; the rest wait their turn
MAX_PENDING = 32  # waiting + running per web worker: past it a new one is refused
MAX_OUTPUT = 4 << 20  # bytes of output kept per job
KEEP_SECONDS = 24 * 3600  # a finished job's files are removed after this
POLL = 0.25  # seconds between looks at a followed job's file
HEARTBEAT = 10.0
CUT_LINE = "       [... the rest of the output is not kept ...]\n"
DONE_STATES = frozenset({"succeeded", "failed", "interrupted"})

Work = Callable[[BuildLog], str]  # runs the change with the job's log; returns the outcome line


@dataclass(frozen=True)
class Job:
    id: str
    app: str
    operation: str  # its name in the permission table: who may run it may watch it
    title: str  # "Scale web=2"
    user: str | None
    state: str  # queued, running, succeeded, failed, interrupted
    message: str  # the outcome (or the error) once done
    created_at: str
    ended_at: str | None = None

    @property
    def done(self) -> bool:
        return self.state in DONE_STATES

    def as_json(self) -> dict:
        return asdict(self)


_pool = ThreadPoolExecutor(max_workers=RUNNERS, thread_name_prefix="paas-job")
_pending_lock = threading.Lock()
_pending = 0


def _paths(ctx: Context, app_id: int, job_id: str) -> tuple[Path, Path]:
    d = names.jobs_dir(ctx.settings, app_id)
    return d / f"{job_id}.json", d / f"{job_id}.log"


def _save(ctx: Context, app_id: int, job: Job) -> None:
    """Atomically: a reader in another worker sees the old state or the new, never half."""
    state, _ = _paths(ctx, app_id, job.id)
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps(job.as_json()))
    os.replace(tmp, state)


def _prune(d: Path) -> None:
    """Finished jobs' files older than KEEP_SECONDS (a running job's output is locked)."""
    cutoff = time.time() - KEEP_SECONDS
    for path in d.glob("*.json"):
        try:
            if path.stat().st_mtime < cutoff:
                path.with_suffix(".log").unlink(missing_ok=True)
                path.unlink(missing_ok=True)
        except OSError:
            pass


def start(ctx: Context, app_name: str, operation: str, title: str, work: Work) -> Job:
    """Queue `work` (checked now against the permission table) and return its job at once."""
    global _pending
    app = access.authorize(ctx, app_name, operation)  # refused here, not inside the job
    with _pending_lock:
        if _pending >= MAX_PENDING:
            raise Throttled(f"{MAX_PENDING} deploys are already waiting here; try again shortly", 10)
        _pending += 1
    try:
        d = names.jobs_dir(ctx.settings, app.id)
        d.mkdir(parents=True, exist_ok=True)
        _prune(d)
        job = Job(secrets.token_hex(8), app.name, operation, title, ctx.actor, "queued", "", now())
        out = open(_paths(ctx, app.id, job.id)[1], "x", encoding="utf-8", errors="replace")  # noqa: SIM115 - the job closes it
        fcntl.flock(out, fcntl.LOCK_EX)  # held while the job lives (see `get`)
        _save(ctx, app.id, job)
        _pool.submit(_run, ctx, app.id, job, out, work)
    except BaseException:
        with _pending_lock:
            _pending -= 1
        raise
    return job


def _run(ctx: Context, app_id: int, job: Job, out: IO[str], work: Work) -> None:
    global _pending
    written = 0

    def sink(line: str) -> None:
        nonlocal written
        if written < MAX_OUTPUT:
            written += len(line)
            out.write(
                line if written < MAX_OUTPUT else "       [... the rest of the output is not kept ...]\n"
            )
            out.flush()

    try:
        _save(ctx, app_id, job := replace(job, state="running"))
        try:
            state, message = "succeeded", work(BuildLog(sink))
        except PaasError as exc:
            state, message = "failed", str(exc)
        except Exception:
            log.exception("job %s (%s of %s) failed", job.id, job.title, job.app)
            state, message = "failed", "internal error during the deploy (see the server log)"
        _save(ctx, app_id, replace(job, state=state, message=message, ended_at=now()))
    except Exception:
        log.exception("job %s of %s: cannot record its state", job.id, job.app)
    finally:
        out.close()  # releases the lock: the job is over
        with _pending_lock:
            _pending -= 1


def _load(ctx: Context, app: App, job_id: str) -> Job:
    """The job as saved, named by the app's name now (it may have been renamed since)."""
    if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
        raise NotFound(f"no job {job_id!r} for {app.name}")
    state, output = _paths(ctx, app.id, job_id)
    try:
        job = replace(Job(**json.loads(state.read_text())), app=app.name)
    except (OSError, ValueError, TypeError):
        raise NotFound(f"no job {job_id!r} for {app.name}") from None
    if job.done:
        return job
    try:
        with open(output, encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return job  # alive
    except OSError:
        pass
    again = replace(Job(**json.loads(state.read_text())), app=app.name)  # it may have ended just now
    return again if again.done else replace(again, state="interrupted", message="the dashboard restarted")


def get(ctx: Context, app_name: str, job_id: str) -> Job:
    """A job of the app, for those who may run what it runs."""
    return _get(ctx, app_name, job_id)[1]


def _get(ctx: Context, app_name: str, job_id: str) -> tuple[App, Job]:
    app = access.require(ctx, app_name, "view")
    job = _load(ctx, app, job_id)
    access.authorize(ctx, app.name, job.operation)
    return app, job


def output(ctx: Context, app_name: str, job_id: str, offset: int = 0) -> tuple[str, int]:
    """The job's complete lines from byte `offset` on, and the offset after them."""
    app, job = _get(ctx, app_name, job_id)
    lines = _read(ctx, app, job, offset)
    return "".join(f"{line}\n" for line, _ in lines), lines[-1][1] if lines else max(0, offset)


def _read(ctx: Context, app: App, job: Job, offset: int) -> list[tuple[str, int]]:
    """Complete lines from byte `offset`, each with the byte offset after it."""
    try:
        with open(_paths(ctx, app.id, job.id)[1], "rb") as fh:
            fh.seek(max(0, offset))
            data = fh.read(MAX_OUTPUT)
    except OSError:
        return []
    lines, at = [], max(0, offset)
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break  # being written
        at += len(raw)
        lines.append((raw[:-1].decode("utf-8", "replace"), at))
    return lines


def follow(
    ctx: Context, app_name: str, job_id: str, offset: int, stopped: Callable[[], bool]
) -> Iterator[tuple[str, int] | Job | None]:
    """Lines (with the byte offset after each) as the job writes them, then the ended job.
    None now and then while nothing comes (a heartbeat: the caller learns the reader left)."""
    app, job = _get(ctx, app_name, job_id)
    quiet = 0.0
    while not stopped():
        lines = _read(ctx, app, job, offset)
        if lines:
            yield from lines
            offset = lines[-1][1]
            quiet = 0.0
            continue
        if job.done:
            yield job
            return
        job = _load(ctx, app, job.id)
        if job.done:
            continue  # one more read: what it wrote before it ended
        time.sleep(POLL)
        quiet += POLL
        if quiet >= HEARTBEAT:
            quiet = 0.0
            yield None
