import os

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return f"Hello from {os.environ.get('DYNO')} version {open('VERSION').read().strip()}\n"
