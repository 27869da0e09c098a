"""Probing new containers before traffic moves: answered HTTP, startup checks, the settle period.

Every probe talks to the container's own address on its network, never to the published loopback
port (docker-proxy accepts connections even when nothing listens inside). Which checks a deploy
runs is decided in paas.services.checks.
"""

from __future__ import annotations

import http.client
import socket
import time
from datetime import UTC, datetime

from docker.models.containers import Container

from paas.core.manifest import StartupCheck
from paas.core.names import LABEL_INDEX, LABEL_TYPE
from paas.scheduler.docker_local import ProcessFailed, container_ip, container_port, log_tail, started_at

FAST_POLL = 0.02  # seconds between probes while a new process boots
FAST_POLL_FOR = 3.0  # seconds of fast probing, then SLOW_POLL
SLOW_POLL = 0.1


def crashed(container: Container) -> str | None:
    """Why the container is no longer a healthy first run, or None."""
    state = container.attrs.get("State", {})
    name = f"{container.labels.get(LABEL_TYPE)}.{container.labels.get(LABEL_INDEX)}"
    restarts = container.attrs.get("RestartCount", 0)
    if state.get("Status") in ("exited", "dead"):
        return f"{name} exited with status {state.get('ExitCode')}"
    if state.get("Restarting"):
        return f"{name} exited with status {state.get('ExitCode')} (restarting)"
    if restarts:
        return f"{name} crashed and was restarted ({restarts} time(s))"
    return None


def _http_answers(ip: str, port: int, host: str, timeout: float) -> bool:
    """True once the process answers an HTTP request with any status line."""
    try:
        with socket.create_connection((ip, port), timeout=timeout) as sock:
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\nUser-Agent: paas-check\r\n\r\n".encode())
            return sock.recv(12).startswith(b"HTTP/")
    except OSError:
        return False


def wait_until_serving(container: Container, timeout: float, host: str = "localhost") -> None:
    """Wait until the app answers HTTP on $PORT inside the container (with the app's Host).

    The published loopback port cannot tell (docker-proxy accepts even when nothing listens), so
    the check talks to the container's own address on the bridge network. An answer, not just an
    accepted connection, is required: a gunicorn whose workers fail to boot accepts, then dies.
    """
    started = time.monotonic()
    deadline = started + timeout
    port = container_port(container)
    while True:
        container.reload()
        reason = crashed(container)
        if reason:
            raise ProcessFailed(f"{reason} before answering on $PORT ({port})", log_tail(container))
        ip = container_ip(container)
        if ip and _http_answers(ip, port, host, timeout=min(5.0, max(0.5, deadline - time.monotonic()))):
            return
        if time.monotonic() >= deadline:
            raise ProcessFailed(
                f"web process did not bind $PORT ({port}) and answer within {int(timeout)} s",
                log_tail(container),
            )
        # Most apps answer within a second or two: poll fast then, gently after.
        time.sleep(FAST_POLL if time.monotonic() - started < FAST_POLL_FOR else SLOW_POLL)


def settle(containers: list[Container], seconds: float) -> None:
    """Every new container must still be running, never restarted, `seconds` after it started:
    catches processes that start and then die. Counted from the start, so time spent booting and
    passing checks already counts."""
    if not containers:
        return
    for c in containers:
        c.reload()
    starts = [t for t in (started_at(c) for c in containers) if t is not None]
    if starts:
        remaining = (max(starts) - datetime.now(UTC)).total_seconds() + seconds
        if remaining > 0:
            time.sleep(remaining)
    else:
        time.sleep(seconds)
    for c in containers:
        c.reload()
        reason = crashed(c)
        if reason:
            raise ProcessFailed(f"{reason} within {seconds:g} s of starting", log_tail(c))


def _request(ip: str, port: int, host: str, check: StartupCheck) -> tuple[int, str]:
    conn = http.client.HTTPConnection(ip, port, timeout=check.timeout)
    try:
        conn.request("GET", check.path, headers={"Host": host, "User-Agent": "paas-check"})
        resp = conn.getresponse()
        return resp.status, resp.read(1 << 20).decode("utf-8", "replace")
    finally:
        conn.close()


def run_startup_check(container: Container, check: StartupCheck, host: str) -> None:
    """Pass when a 2xx/3xx answer (holding `content`, if given) comes within `attempts` tries."""
    dyno = f"{container.labels.get(LABEL_TYPE)}.{container.labels.get(LABEL_INDEX)}"
    port = container_port(container)
    time.sleep(check.initial_delay)
    last = "no answer"
    for attempt in range(1, check.attempts + 1):
        container.reload()
        reason = crashed(container)
        if reason:
            raise ProcessFailed(f"{reason} during check {check.name!r}", log_tail(container))
        ip = container_ip(container)
        try:
            status, body = _request(ip, port, host, check)
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
            log_tail(container),
        )
    if check.uptime:
        time.sleep(check.uptime)
        container.reload()
        reason = crashed(container)
        if reason:
            raise ProcessFailed(
                f"{reason} within {check.uptime:g} s (check {check.name!r})", log_tail(container)
            )
