"""The admins' Users page: who may log in, with which SSH keys and passwords.

Every rule (admins only, the last admin stays one, key and password checks) is in
`paas.services.users` and `paas.services.keys`: a non-admin gets the 403 they raise, for the page
and for every POST, and has no link to it. The user a form acts on is a form field, never a path.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from flask import Blueprint, Response, g, redirect, render_template, request, url_for

from paas.core.context import Context
from paas.errors import PaasError, PermissionDenied
from paas.services import access
from paas.services import keys as keys_service
from paas.services import users as users_service
from paas.web.auth import flash

bp = Blueprint("accounts", __name__)


def ctx() -> Context:
    return g.ctx


def _name() -> str:
    return request.form.get("name", "").strip()


def _password() -> str | None:
    """An empty password field: no password (the user signs in with SSH keys or tokens only)."""
    return request.form.get("password", "") or None


def user_action(fn: Callable[[], str]) -> Callable[[], Response]:
    """Run a form action, flash its outcome, back to the page; a refusal for a non-admin is 403."""

    @wraps(fn)
    def view() -> Response:
        try:
            flash(fn(), "ok")
        except PermissionDenied:
            raise
        except PaasError as exc:
            flash(str(exc), "error")
        return redirect(url_for("accounts.users"), 303)

    return view


@bp.app_context_processor
def navigation() -> dict:
    """The Users link is shown to admins only (the page itself refuses anyone else)."""
    c = g.get("ctx")
    return {"may_manage_users": c is not None and access.is_admin(c)}


@bp.get("/users")
def users():  # type: ignore[no-untyped-def]
    return render_template("users.html", accounts=users_service.list_accounts(ctx()))


@bp.post("/users")
@user_action
def add() -> str:
    admin = request.form.get("admin") == "1"
    user = users_service.add_user(ctx(), _name(), _password(), admin=admin)
    return f"Added {user.name}" + (" (admin)" if user.is_admin else "")


@bp.post("/users/keys")
@user_action
def add_key() -> str:
    name = _name()
    key = keys_service.add_key(ctx(), name, request.form.get("public_key", ""))
    return f"Added key {key.name} for {name} ({key.fingerprint})"


@bp.post("/users/password")
@user_action
def password() -> str:
    name = _name()
    users_service.set_password(ctx(), name, request.form.get("password", ""))
    return f"Set a new password for {name}; their sessions have ended"


@bp.post("/users/admin")
@user_action
def admin() -> str:
    user = users_service.set_admin(ctx(), _name(), request.form.get("admin") == "1")
    return f"{user.name} is {'now' if user.is_admin else 'no longer'} an admin"


@bp.post("/users/remove")
@user_action
def remove() -> str:
    name = _name()
    users_service.remove_user(ctx(), name)
    return f"Removed {name} with their keys, sessions and tokens"
