import os
import socket
import sys

from flask import Flask, Response

if os.environ.get("CRASH_ON_BOOT") == "1":
    print("refusing to boot: CRASH_ON_BOOT=1", flush=True)
    sys.exit(3)

app = Flask(__name__)


@app.route("/")
def index():
    print(f"served / from {os.environ.get('DYNO')}", flush=True)
    return f"{os.environ.get('DYNO')} {socket.gethostname()}\n"


@app.route("/env/<key>")
def env(key):
    value = os.environ.get(key)
    if value is None:
        return Response("missing", status=404)
    return Response(value.encode("utf-8"), mimetype="application/octet-stream")
