"""The dashboard and the JSON API: a Flask app over `paas.services`, served by gunicorn.

Views parse forms and JSON and render templates; every rule (names, permissions, releases,
throttling) is in the service layer, so a change made here is the one `ssh paas ...` makes.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from paas.core.context import Context
from paas.core.output import configure_logging
from paas.settings import Settings
from paas.web import accounts, api, auth, errors, pages

MAX_BODY = 1024 * 1024  # config is at most 64 KiB per app; nothing else is bigger


def _secret_key(settings: Settings) -> bytes:
    """Signs session cookies; made once (mode 0600) and shared by every worker and restart."""
    path = settings.web_secret_path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32).hex().encode())
    key = path.read_bytes().strip()
    if len(key) < 32:  # a torn write by a worker that died mid-way: never sign with it
        raise RuntimeError(f"{path} is too short to be a signing key; remove it and restart")
    return key


def create_app(settings: Settings | None = None, ctx: Context | None = None) -> Flask:
    """One per gunicorn worker: each opens its own store connection (SQLite, WAL)."""
    settings = settings or (ctx.settings if ctx else Settings.from_env())
    ctx = ctx or Context.open(settings)
    if not logging.getLogger().handlers:  # under gunicorn: our loggers' lines, escaped (web.log)
        configure_logging(logging.INFO)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(settings),
        SESSION_COOKIE_NAME="paas_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(days=7),
        WTF_CSRF_TIME_LIMIT=None,  # as long as the session (the store bounds that)
        MAX_CONTENT_LENGTH=MAX_BODY,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.extensions["paas"] = ctx
    app.session_interface = auth.SessionInterface()
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    auth.init_app(app)  # before CSRF: anonymous requests are turned away first
    csrf = CSRFProtect(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # bearer tokens only: a browser never sends them on its own
    for blueprint in ctx.plugins.blueprints():  # behind the same login (auth.init_app)
        if blueprint.name not in app.blueprints:
            app.register_blueprint(blueprint)
    errors.init_app(app)
    return app
