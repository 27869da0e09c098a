"""Live logs and deploy jobs' output as Server-Sent Events (served by the evented gunicorn).

A log line's event id is its timestamp, a job line's the byte offset after it, so a browser that
reconnects (EventSource does it on its own) sends Last-Event-ID and gets only what it has not
seen. A comment every few seconds keeps proxies from closing an idle stream and tells us when
the browser has gone.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator

from flask import Response

from paas.core.context import Context
from paas.errors import PaasError
from paas.services import jobs as jobs_service
from paas.services import logs as logs_service

HEARTBEAT = 10.0
BACKLOG = 5000  # lines buffered for a slow browser before the stream gives up on it


def _event(line: str) -> str:
    stamp = line.split(" ", 1)[0]
    text = line.replace("\r", "").replace("\n", " ")
    return f"id: {stamp}\ndata: {text}\n\n"


def log_events(
    ctx: Context, app: str, ptype: str | None, lines: int, last_event_id: str | None
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
        finally:
            q.put(None)

    threading.Thread(target=run, daemon=True, name=f"logs-{app}").start()
    try:
        yield "retry: 2000\n\n"
        while not stop.is_set():
            try:
                item = q.get(timeout=HEARTBEAT)
            except queue.Empty:
                yield ": keep-alive\n\n"
                continue
            if item is None:
                break
            if item.startswith("error: "):
                yield f"event: failure\ndata: {item[7:]}\n\n"
                break
            yield _event(item)
    finally:
        stop.set()  # the browser went away (or the stream ended): stop following


def log_stream(ctx: Context, app: str, ptype: str | None, lines: int, last_event_id: str | None) -> Response:
    """The app's live log (the page's and the API's): checked before the stream starts, so a
    refusal answers as a page or JSON, not inside the stream."""
    name = logs_service.check(ctx, app, lines, ptype)
    return sse_response(log_events(ctx, name, ptype, lines, last_event_id))


def job_events(ctx: Context, app: str, job_id: str, offset: int) -> Iterator[str]:
    """A job's lines from `offset`, then one `done` event with the ended job (as JSON)."""
    gone = threading.Event()
    try:
        yield "retry: 2000\n\n"
        for item in jobs_service.follow(ctx, app, job_id, offset, gone.is_set):
            if item is None:
                yield ": keep-alive\n\n"
            elif isinstance(item, jobs_service.Job):
                yield f"event: done\ndata: {json.dumps(item.as_json())}\n\n"
                return
            else:
                line, after = item
                yield f"id: {after}\ndata: {line.replace(chr(13), '')}\n\n"
    finally:
        gone.set()


def sse_response(events: Iterator[str]) -> Response:
    return Response(
        events,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
