"""Who is asking: a session cookie for the dashboard, a bearer token for the API.

Nothing but the login page (and the static CSS/JS it needs) answers without one. The session
cookie is signed and holds a random id whose hash the store keeps: logging out, a password
change or removing the user ends it server-side, for every worker at once.
"""

from __future__ import annotations

import ipaddress

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from paas.core import validation
from paas.core.context import Context
from paas.errors import Throttled, Unauthenticated
from paas.services import users as users_service
from paas.web.errors import is_api, json_error

bp = Blueprint("auth", __name__)
PUBLIC_ENDPOINTS = frozenset({"auth.login", "static"})


def base_ctx() -> Context:
    return current_app.extensions["paas"]


def _loopback(addr: str | None) -> bool:
    try:
        return ipaddress.ip_address(addr or "").is_loopback
    except ValueError:
        return False


def client_ip() -> str:
    """The browser's address; behind the managed nginx (a loopback peer), the one it reports."""
    peer = request.remote_addr or "?"
    real = request.headers.get("X-Real-IP", "").strip()
    return real[:64] if real and _loopback(peer) else peer


def is_https() -> bool:
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.is_secure or (proto == "https" and _loopback(request.remote_addr))


HOST_COOKIE_PREFIX = "__Host-"


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the browser came over HTTPS, and then named
    `__Host-...`: browsers accept that name only when Secure, for path /, with no Domain, so no
    other host (an app on a sibling name) can set or shadow it."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or is_https()

    def get_cookie_name(self, app: Flask) -> str:
        name = super().get_cookie_name(app)
        return HOST_COOKIE_PREFIX + name if self.get_cookie_secure(app) else name

    def get_cookie_domain(self, app: Flask) -> str | None:
        return None  # a host-only cookie (required by the prefix; the dashboard has one host)

    def get_cookie_path(self, app: Flask) -> str:
        return "/"


def safe_next(target: str | None) -> str:
    """Only a path on this site (`paas.core.validation.site_path`), else the apps page."""
    return target if validation.site_path(target) else url_for("pages.apps")


def flash(message: str, category: str = "message") -> None:
    """Like Flask's flash, but the message waits in the store (keyed by the session), not in
    the signed cookie: a failed deploy's output would make the cookie too big for browsers."""
    users_service.add_flash(base_ctx(), session.get("sid"), category, message)


def flashed_messages(with_categories: bool = False) -> list:
    """What `flash` queued for this session (templates call it as `get_flashed_messages`)."""
    if "flashes" not in g:
        g.flashes = users_service.take_flashes(base_ctx(), session.get("sid"))
    return list(g.flashes) if with_categories else [m for _, m in g.flashes]


def init_app(app: Flask) -> None:
    app.jinja_env.globals["get_flashed_messages"] = flashed_messages

    @app.before_request
    def authenticate():  # type: ignore[no-untyped-def]
        g.user = None
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        ctx = base_ctx()
        if is_api():
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            token = token.strip() if scheme.lower() == "bearer" else ""
            try:
                user = users_service.token_user(ctx, token, client_ip())
            except Throttled as exc:
                resp = json_error(429, "rate_limited", str(exc))
                resp.headers["Retry-After"] = str(exc.retry_after)
                return resp
            if user is None:
                return json_error(
                    401, "unauthorized", "a valid API token is required: Authorization: Bearer <token>"
                )
            g.credential = ("token", token)
        else:
            user = users_service.session_user(ctx, session.get("sid"))
            if user is None:
                if request.method in ("GET", "HEAD"):
                    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
                return redirect(url_for("auth.login"), 303)
            g.credential = ("session", session.get("sid"))
        g.user = user
        g.ctx = ctx.for_actor(user.name, user.is_admin)
        return None

    @app.after_request
    def headers(resp):  # type: ignore[no-untyped-def]
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none';"
            " frame-ancestors 'none'; form-action 'self'",
        )
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "static":
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    ctx = base_ctx()
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        if users_service.session_user(ctx, session.get("sid")) is not None:
            return redirect(target)
        return render_template("login.html", next=target, error=None)
    name = request.form.get("username", "")
    try:
        user = users_service.login(ctx, name, request.form.get("password", ""), client_ip())
    except Throttled as exc:
        resp = current_app.make_response(
            (render_template("login.html", next=target, error=str(exc), username=name), 429)
        )
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    except Unauthenticated as exc:
        return render_template("login.html", next=target, error=str(exc), username=name), 401
    sid = users_service.start_session(ctx, user)
    session.clear()  # a fresh session (and CSRF token) at every login
    session["sid"] = sid
    session.permanent = True
    return redirect(target, 303)


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    users_service.end_session(base_ctx(), session.get("sid"))
    session.clear()
    return redirect(url_for("auth.login"), 303)
