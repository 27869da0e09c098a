"""A dependency-free web app written the way Dokku's sample apps are."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/health":
            ok = os.environ.get("UNHEALTHY") != "1"
            status, body = (200, "ok") if ok else (500, "sick")
        else:
            status, body = 200, f"python/{os.environ.get('GREETING', 'hello')}"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
