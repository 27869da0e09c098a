"""A web process with nothing to build: the stack's own python3, stdlib only."""

import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(
            {
                "dyno": os.environ.get("DYNO"),
                "greeting": os.environ.get("GREETING"),
                "secret_length": len(os.environ.get("SECRET_TOKEN", "")),
                "postdeploy_marker": os.environ.get("POSTDEPLOY"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
