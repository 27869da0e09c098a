"""Live logs and deploy jobs' output as Server-Sent Events (served by the evented gunicorn).

A log line's event id is its timestamp, a job line's the byte offset after it, so a browser that
reconnects (EventSource does it on its own) sends Last-Event-ID and gets only what it has not
seen. A comment every few seconds keeps proxies from closing an idle stream and tells us when
the browser has gone. Each stream counts against its user's and its address's caps
(`services.throttle`), and ends within seconds once the session or token it was opened with no
longer holds (logout, a new password, a revoked token, a demoted admin).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

from flask import Response, g

from paas.core.context import Context
from paas.errors import PaasError
from paas.services import jobs as jobs_service
from paas.services import logs as logs_service
from paas.services import throttle
from paas.services import users as users_service
from paas.web import auth

HEARTBEAT = 10.0
BACKLOG = 5000  # lines buffered for a slow browser before the stream gives up on it
SIGNED_OUT = "session ended: logged out, new password, token revoked or no longer an admin"
STREAM_FAILED = "the log stream failed (the container engine did not answer); reload to try again"
logger = logging.getLogger("paas.web")
Alive = Callable[[], bool]


def _every(seconds: float, check: Alive) -> Alive:
    """`check`, asked at most once per `seconds` (a store read); True in between."""
    last = [time.monotonic()]

    def ask() -> bool:
        if time.monotonic() - last[0] < seconds:
            return True
        last[0] = time.monotonic()
        return check()

    return ask


def _event(line: str) -> str:
    stamp = line.split(" ", 1)[0]
    text = line.replace("\r", "").replace("\n", " ")
    return f"id: {stamp}\ndata: {text}\n\n"


def log_events(
    ctx: Context,
    app: str,
    ptype: str | None,
    lines: int,
    last_event_id: str | None,
    alive: Alive = lambda: True,
) -> Iterator[str]:
    q: queue.Queue[str | None] = queue.Queue(maxsize=BACKLOG)
    stop = threading.Event()

    def emit(line: str) -> None:
        if last_event_id and line.split(" ", 1)[0] <= last_event_id:
            return  # seen before the browser reconnected
        try:
            q.put_nowait(line)
        except queue.Full:
            stop.set()

    def run() -> None:
        try:
            logs_service.follow(ctx, app, emit, stop.is_set, lines, ptype)
        except PaasError as exc:
            q.put(f"error: {exc}")
        except Exception:  # the engine's (dockerd restarting): the browser is told, not left hanging
            logger.exception("live log of %s", app)
            q.put(f"error: {STREAM_FAILED}")
        finally:
            q.put(None)

    threading.Thread(target=run, daemon=True, name=f"logs-{app}").start()
    try:
        yield "retry: 2000\n\n"
        sent = time.monotonic()
        while not stop.is_set():
            try:
                item: str | None = q.get(timeout=throttle.STREAM_CHECK_SECONDS)
            except queue.Empty:
                item = ""
            if not alive():
                yield f"event: failure\ndata: {SIGNED_OUT}\n\n"
                break
            if item == "":
                if time.monotonic() - sent >= HEARTBEAT:
                    sent = time.monotonic()
                    yield ": keep-alive\n\n"
                continue
            if item is None:
                break
            if item.startswith("error: "):
                yield f"event: failure\ndata: {item[7:]}\n\n"
                break
            sent = time.monotonic()
            yield _event(item)
    finally:
        stop.set()  # the browser went away (or the stream ended): stop following


def log_stream(ctx: Context, app: str, ptype: str | None, lines: int, last_event_id: str | None) -> Response:
    """The app's live log (the page's and the API's): checked before the stream starts, so a
    refusal answers as a page or JSON, not inside the stream; then held to the stream caps and
    ended when the session or token it was opened with no longer holds."""
    name = logs_service.check(ctx, app, lines, ptype)
    return guarded(lambda alive: log_events(ctx, name, ptype, lines, last_event_id, alive))


def job_events(
    ctx: Context, app: str, job_id: str, offset: int, alive: Alive = lambda: True
) -> Iterator[str]:
    """A job's lines from `offset`, then one `done` event with the ended job (as JSON)."""
    gone = threading.Event()
    signed_out = threading.Event()

    def stopped() -> bool:
        if not gone.is_set() and not alive():
            signed_out.set()
        return gone.is_set() or signed_out.is_set()

    try:
        yield "retry: 2000\n\n"
        for item in jobs_service.follow(ctx, app, job_id, offset, stopped):
            if item is None:
                yield ": keep-alive\n\n"
            elif isinstance(item, jobs_service.Job):
                yield f"event: done\ndata: {json.dumps(item.as_json())}\n\n"
                return
            else:
                line, after = item
                yield f"id: {after}\ndata: {line.replace(chr(13), '')}\n\n"
        if signed_out.is_set():
            yield f"event: failure\ndata: {SIGNED_OUT}\n\n"
    finally:
        gone.set()


def guarded(open_events: Callable[[Alive], Iterator[str]]) -> Response:
    """The request user's live stream: counted against their and their address's caps (429 past
    either, before anything streams), given a check that their session or token still holds."""
    base = auth.base_ctx()
    slots: throttle.StreamSlots = base.shared("stream-slots", throttle.StreamSlots)
    user, address = g.user, auth.client_ip()
    kind, secret = g.credential
    slots.open(user.name, address)
    try:
        alive = _every(
            throttle.STREAM_CHECK_SECONDS, lambda: users_service.still_signed_in(base, kind, secret, user)
        )
        resp = sse_response(open_events(alive))
    except BaseException:
        slots.close(user.name, address)
        raise
    resp.call_on_close(lambda: slots.close(user.name, address))
    return resp


def sse_response(events: Iterator[str]) -> Response:
    return Response(
        events,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
