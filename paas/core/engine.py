"""The one place a Docker Engine client is made (through the SDK, never the CLI), and the Engine
API's multiplexed stream read from a hijacked socket (`run`, commands in service containers)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

import docker

from paas.errors import PaasError


def is_local(c: docker.DockerClient) -> bool:
    """Whether the engine is this host's, over its unix socket (its containers' files are here)."""
    return c.api.base_url.startswith("http+docker://")


def client(timeout: int = 300) -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=timeout)
        if is_local(c):
            # A unix socket: no proxy applies, and requests would read the proxy variables of
            # the environment on every call (a fifth of a reconcile pass's time, profiled).
            c.api.trust_env = False
        c.ping()
    except Exception as exc:
        raise PaasError(
            f"cannot reach the Docker engine ({exc.__class__.__name__}); is dockerd running?"
        ) from None
    return c


def _recv_exact(raw: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = raw.recv(n - len(buf))
        if not chunk:
            return b""
        buf += chunk
    return buf


def demux(raw: socket.socket, out: Callable[[bytes], None], err: Callable[[bytes], None]) -> None:
    """Docker's multiplexed stream without a TTY (8-byte headers: stream, size) to out/err."""
    while header := _recv_exact(raw, 8):
        stream, length = struct.unpack(">BxxxL", header)
        data = _recv_exact(raw, length)
        (err if stream == 2 else out)(data)
