"""Dashboard pages of backing services (every kind's plugin registers this blueprint).

The app page includes `_service_links.html`: the services linked to the app, with their state.
The list shows the services the user owns (admins: all); a service page shows its info (the
password masked unless the user is an admin) and its owner's backups, each to download. Who may
see what is decided in service.py (the owner, or an admin; to anyone else a service
does not exist): these views only render.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, g, render_template, send_file

from . import service as backing

_BLUEPRINT: Blueprint | None = None


def blueprint() -> Blueprint:
    """One blueprint for every service kind (each plugin returns the same object)."""
    global _BLUEPRINT
    if _BLUEPRINT is not None:
        return _BLUEPRINT
    bp = Blueprint("services", __name__, template_folder=str(Path(__file__).parent / "templates"))

    @bp.app_context_processor
    def linked_services() -> dict:
        def find(app_name: str) -> list[dict]:
            return backing.links_of_app(g.ctx, backing.kinds(g.ctx), app_name)

        return {"linked_services": find}

    @bp.get("/services")
    def index():  # type: ignore[no-untyped-def]
        rows = [
            {"kind": k.name, **row} for k in backing.kinds(g.ctx) for row in backing.list_services(g.ctx, k)
        ]
        return render_template("services.html", rows=rows)

    @bp.get("/services/<kind>/<name>")
    def service(kind: str, name: str):  # type: ignore[no-untyped-def]
        k = backing.kind_named(kind)
        info = backing.info(g.ctx, k, name)
        return render_template(
            "service.html", kind=k, info=info, backups=backing.list_backups(g.ctx, k, name)
        )

    @bp.get("/services/<kind>/<name>/backups/<backup_id>")
    def download(kind: str, name: str, backup_id: str):  # type: ignore[no-untyped-def]
        k = backing.kind_named(kind)
        path = backing.backup_path(g.ctx, k, name, backup_id)  # the owner's, a checked id, never a path
        backing.verify(path)
        return send_file(
            path, as_attachment=True, download_name=backup_id, mimetype="application/octet-stream"
        )

    _BLUEPRINT = bp
    return bp
