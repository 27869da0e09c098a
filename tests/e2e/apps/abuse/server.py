"""A dependency-free app that misbehaves on request, for the containment tests (bounded: it
never asks for more than the query says)."""

import os
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def fork_bomb(n: int, hold: float) -> int:
    """Fork up to n children that each sleep `hold` seconds; return how many forks worked."""
    made = 0
    for _ in range(n):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(hold)
            os._exit(0)
        made += 1
    return made


def connect(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=3):
            return "connected"
    except OSError as exc:
        return f"refused: {exc.__class__.__name__}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/fork":
            body = str(fork_bomb(int(q.get("n", "10")), float(q.get("hold", "20"))))
        elif url.path == "/connect":
            body = connect(q["host"], int(q["port"]))
        elif url.path == "/whoami":
            body = f"{os.getuid()}:{os.getgid()}"
        else:
            body = f"ok {os.environ.get('DYNO')}"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # quiet
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "5000"))), Handler).serve_forever()
