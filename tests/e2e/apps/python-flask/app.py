import json
import os
import sys

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return f"flask version {open('VERSION').read().strip()}\n"


@app.route("/env")
def env():
    """What the run time looks like from inside: user, interpreter, Heroku conventions."""
    return json.dumps(
        {
            "uid": os.getuid(),
            "executable": sys.executable,
            "path": os.environ.get("PATH", ""),
            "unbuffered": os.environ.get("PYTHONUNBUFFERED"),
            "dyno": os.environ.get("DYNO"),
            "port": os.environ.get("PORT"),
            "greeting": os.environ.get("GREETING"),
            "from_profile": os.environ.get("FROM_PROFILE_D"),
            "docs_shipped": os.path.exists("docs/manual.txt"),
            "ca_env": [k for k in ("PIP_CERT", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS") if k in os.environ],
        }
    )
