"""Custom startup checks against a new container, from inside the bridge network."""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass

from docker.models.containers import Container

from paas.core.names import LABEL_INDEX, LABEL_TYPE
from paas.scheduler.docker_local import ProcessFailed, _crashed, container_port, log_tail


@dataclass(frozen=True)
class StartupCheck:
    """One app.json startup check (Dokku's format; parsed in paas.services.checks)."""

    name: str
    path: str = "/"
    content: str | None = None
    timeout: float = 5.0
    attempts: int = 3
    wait: float = 1.0
    initial_delay: float = 0.0
    uptime: float = 0.0


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
        reason = _crashed(container)
        if reason:
            raise ProcessFailed(f"{reason} during check {check.name!r}", log_tail(container))
        ip = container.attrs.get("NetworkSettings", {}).get("IPAddress")
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
        reason = _crashed(container)
        if reason:
            raise ProcessFailed(
                f"{reason} within {check.uptime:g} s (check {check.name!r})", log_tail(container)
            )
