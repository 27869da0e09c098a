"""Listens on the EXPOSEd port and says where its greeting came from."""

import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

GREETING = " ".join(sys.argv[1:]) or "no arguments"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"docker app {GREETING} uid={os.getuid()} port={os.environ.get('PORT')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
