"""The metrics plugin's pages and API (registered through `paas_web_blueprints`, behind the same
login as the rest): the app page's Requests section, the history as JSON, and the Prometheus
text for admins. Views only render; rules are in service.py."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, g, jsonify, request

from paas.plugin_api import NotFound, PermissionDenied

from . import charts, prometheus, service
from .commands import _watch_line
from .watch import ms, pct

RANGES = ("15m", "1h", "24h", "7d")
DEFAULT_RANGE = "1h"
_FOLDER = Path(__file__).parent


def _ms(value: float | None) -> str:
    return "–" if value is None else ms(value)


def blueprint() -> Blueprint:
    bp = Blueprint(
        "metrics",
        __name__,
        template_folder=str(_FOLDER / "templates"),
        static_folder=str(_FOLDER / "static"),
        static_url_path="/metrics-static",
    )

    @bp.app_context_processor
    def app_metrics() -> dict:
        def find(app_name: str) -> dict | None:
            wanted = request.args.get("range", DEFAULT_RANGE)
            chosen = wanted if wanted in RANGES else DEFAULT_RANGE
            try:
                report = service.report(g.ctx, app_name, chosen)
            except (NotFound, PermissionDenied):
                return None
            return {
                "report": report,
                "charts": charts.charts(report),
                "ranges": RANGES,
                "range": chosen,
                "watch": _watch_line(report["watch"]) if report["watch"] else None,
                "pct": pct,
                "ms": _ms,
            }

        return {"app_metrics": find}

    @bp.get("/api/v1/apps/<app>/metrics/history")
    def history(app: str):  # type: ignore[no-untyped-def]
        return jsonify(service.report(g.ctx, app, request.args.get("since") or "1h"))

    @bp.get("/api/v1/metrics")
    def exposition():  # type: ignore[no-untyped-def]
        return Response(service.prometheus_text(g.ctx), content_type=prometheus.CONTENT_TYPE)

    return bp
