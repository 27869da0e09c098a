"""Probing new processes before traffic moves: answered HTTP, startup checks, the settle period.

The same checks for every scheduler: each talks to a `Probe` (paas.scheduler.interface), which
says where the process answers. docker-local's is the container's own address on its network,
never the published loopback port (docker-proxy accepts connections even when nothing listens
inside); swarm's is the task's host-mode port on its node, where an HTTP answer (not an accepted
connection) is what passes. Which checks a deploy runs is decided in paas.services.checks.
"""

from __future__ import annotations

import http.client
import socket
import time
from datetime import UTC, datetime

from paas.core.manifest import StartupCheck
from paas.scheduler.interface import Probe, ProcessFailed

FAST_POLL = 0.02  # seconds between probes while a new process boots
FAST_POLL_FOR = 3.0  # seconds of fast probing, then SLOW_POLL
SLOW_POLL = 0.1
PREPARE_TIMEOUT = 900.0  # placing a process and pulling its image, before its boot timeout starts


def _http_answers(ip: str, port: int, host: str, timeout: float) -> bool:
    """True once the process answers an HTTP request with any status line."""
    try:
        with socket.create_connection((ip, port), timeout=timeout) as sock:
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: paas-check\r\n\r\n".encode())
            return sock.recv(12).startswith(b"HTTP/")
    except OSError:
        return False


def wait_until_serving(
    probe: Probe, timeout: float, host: str = "localhost", prepare_timeout: float = PREPARE_TIMEOUT
) -> None:
    """Wait until the app answers HTTP on $PORT inside the container (with the app's Host).

    The published loopback port cannot tell (docker-proxy accepts even when nothing listens), so
    the check talks to the container's own address on the bridge network. An answer, not just an
    accepted connection, is required: a gunicorn whose workers fail to boot accepts, then dies.
    `timeout` counts from when the process starts: a node that first pulls the image (768 MB of
    stack on a new node) has `prepare_timeout` for that.
    """
    started = time.monotonic()
    deadline = started + timeout
    prepare_deadline = started + prepare_timeout
    port = probe.port
    while True:
        probe.refresh()
        reason = probe.crashed()
        if reason:
            raise ProcessFailed(f"{reason} before answering on $PORT ({port})", probe.log_tail())
        if probe.preparing():
            now = time.monotonic()
            if now >= prepare_deadline:
                raise ProcessFailed(
                    f"{probe.dyno} was not started within {int(prepare_timeout)} s"
                    " (placing it, pulling its image)",
                    [],
                )
            deadline = now + timeout  # the boot clock starts when the process does
            time.sleep(SLOW_POLL)
            continue
        where = probe.endpoint()
        wait = min(5.0, max(0.5, deadline - time.monotonic()))
        if where and _http_answers(*where, host, timeout=wait):
            return
        if time.monotonic() >= deadline:
            raise ProcessFailed(
                f"web process did not bind $PORT ({port}) and answer within {int(timeout)} s",
                probe.log_tail(),
            )
        # Most apps answer within a second or two: poll fast then, gently after.
        time.sleep(FAST_POLL if time.monotonic() - started < FAST_POLL_FOR else SLOW_POLL)


def settle(probes: list[Probe], seconds: float) -> None:
    """Every new process must still be running, never restarted, `seconds` after it started:
    catches processes that start and then die. Counted from the start, so time spent booting and
    passing checks already counts."""
    if not probes:
        return
    for p in probes:
        p.refresh()
    starts = [t for t in (p.started_at() for p in probes) if t is not None]
    if starts:
        remaining = (max(starts) - datetime.now(UTC)).total_seconds() + seconds
        if remaining > 0:
            time.sleep(remaining)
    else:
        time.sleep(seconds)
    for p in probes:
        p.refresh()
        reason = p.crashed()
        if reason:
            raise ProcessFailed(f"{reason} within {seconds:g} s of starting", p.log_tail())


def _request(ip: str, port: int, host: str, check: StartupCheck) -> tuple[int, str]:
    conn = http.client.HTTPConnection(ip, port, timeout=check.timeout)
    try:
        conn.request("GET", check.path, headers={"Host": host, "User-Agent": "paas-check"})
        resp = conn.getresponse()
        return resp.status, resp.read(1 << 20).decode("utf-8", "replace")
    finally:
        conn.close()


def run_startup_check(probe: Probe, check: StartupCheck, host: str) -> None:
    """Pass when a 2xx/3xx answer (holding `content`, if given) comes within `attempts` tries."""
    dyno = probe.dyno
    time.sleep(check.initial_delay)
    last = "no answer"
    for attempt in range(1, check.attempts + 1):
        probe.refresh()
        reason = probe.crashed()
        if reason:
            raise ProcessFailed(f"{reason} during check {check.name!r}", probe.log_tail())
        where = probe.endpoint()
        try:
            if where is None:
                raise OSError("not placed yet")
            status, body = _request(*where, host, check)
            if not 200 <= status < 400:
                last = f"HTTP {status}"
            elif check.content is not None and check.content not in body:
                last = f"HTTP {status} without {check.content!r} in the body"
            else:
                last = ""
        except (OSError, http.client.HTTPException) as exc:
            last = f"{exc.__class__.__name__}: {exc}"
        if not last:
            break
        if attempt < check.attempts:
            time.sleep(check.wait)
    if last:
        raise ProcessFailed(
            f"{dyno} failed check {check.name!r} (GET {check.path}) "
            f"after {check.attempts} attempt(s): {last}",
            probe.log_tail(),
        )
    if check.uptime:
        time.sleep(check.uptime)
        probe.refresh()
        reason = probe.crashed()
        if reason:
            raise ProcessFailed(
                f"{reason} within {check.uptime:g} s (check {check.name!r})", probe.log_tail()
            )
