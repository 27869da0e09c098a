"""The app page's review apps panel and its Destroy button (the plugin's blueprint).

The app page includes `_review_apps.html`: for a parent, its review apps (branch, URL, last
push, age) and whether new ones are made; for a review app, its parent and branch. The views
only render and call service.py, which checks the permission table.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, g, redirect, request, url_for

from paas.plugin_api import BuildLog, PaasError, PermissionDenied, access
from paas.web.auth import flash

from . import service

_BLUEPRINT: Blueprint | None = None


def blueprint() -> Blueprint:
    """One blueprint per process (the dashboard's app factory may run more than once)."""
    global _BLUEPRINT
    if _BLUEPRINT is not None:
        return _BLUEPRINT
    bp = Blueprint("review_apps", __name__, template_folder=str(Path(__file__).parent / "templates"))

    @bp.app_context_processor
    def review_apps() -> dict:
        def find(app_name: str) -> dict:
            return service.report(g.ctx, app_name)

        return {"review_apps": find}

    @bp.post("/apps/<app>/review-apps/destroy")
    def destroy(app: str):  # type: ignore[no-untyped-def]
        parent = None
        try:
            found = service.report(g.ctx, app)
            parent = found["parent"]
            service.destroy(g.ctx, app, BuildLog())
        except PaasError as exc:
            if isinstance(exc, PermissionDenied) or not access.allowed_on(g.ctx, app):
                raise
            flash(str(exc), "error")
            return redirect(url_for("pages.app", app=app), 303)
        flash(f"Destroyed review app {app}", "ok")
        back = parent if request.form.get("back") != "apps" and parent else None
        return redirect(url_for("pages.app", app=back) if back else url_for("pages.apps"), 303)

    _BLUEPRINT = bp
    return bp
