"""A dependency-free web app for resilience tests: behaviour comes from small files in the repo."""

import itertools
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def read(name: str, default: str = "") -> str:
    path = Path(name)
    return path.read_text().strip() if path.exists() else default


time.sleep(float(read("BOOT_DELAY", "0")))
if read("DIE_AFTER"):  # serves, then dies (docker restarts it, and it dies again)
    threading.Timer(float(read("DIE_AFTER")), os._exit, args=(3,)).start()
VERSION = read("VERSION", "1")
HEALTH = read("HEALTH", "ok")
FAIL_EVERY = int(read("FAIL_EVERY", "0"))  # every Nth request (but /health) answers 500
_served = itertools.count(1)
_served_lock = threading.Lock()


def _next() -> int:
    with _served_lock:
        return next(_served)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/health":
            status, body = (200, "ok") if HEALTH == "ok" else (500, "unhealthy")
        elif FAIL_EVERY and _next() % FAIL_EVERY == 0:
            status, body = 500, f"failing on purpose {VERSION}\n"
        else:
            status, body = 200, f"version {VERSION} {os.environ.get('DYNO')}\n"
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (a check that timed out): not this app's error

    def log_message(self, fmt: str, *args: object) -> None:
        print(f"{self.address_string()} {fmt % args}", flush=True)


print(f"version {VERSION} listening on {os.environ['PORT']}", flush=True)
ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
