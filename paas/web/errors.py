"""Errors as users see them: a page for the dashboard, `{"id", "message"}` for the API (as
Heroku's Platform API), with the status code the kind of error calls for. Never a traceback."""

from __future__ import annotations

import logging

import docker
import requests
from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from paas.buildpacks.result import BuildFailed
from paas.errors import (
    Conflict,
    NotFound,
    PaasError,
    PermissionDenied,
    QuotaExceeded,
    Throttled,
    Unauthenticated,
)
from paas.services.deploy import DeployFailed

log = logging.getLogger("paas.web")

_KINDS: list[tuple[type[PaasError], int, str]] = [
    (Unauthenticated, 401, "unauthorized"),
    (QuotaExceeded, 403, "quota_exceeded"),
    (PermissionDenied, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (Throttled, 429, "rate_limited"),
    (DeployFailed, 422, "deploy_failed"),
    (BuildFailed, 422, "build_failed"),
    (PaasError, 400, "invalid_params"),
]


TITLES = {
    "unauthorized": "Not logged in",
    "forbidden": "Not allowed",
    "quota_exceeded": "Over a quota",
    "not_found": "Not found",
    "conflict": "Conflict",
    "rate_limited": "Too many attempts",
    "deploy_failed": "Deploy failed",
    "build_failed": "Build failed",
    "invalid_params": "Refused",
}


def classify(exc: PaasError) -> tuple[int, str]:
    for kind, status, ident in _KINDS:
        if isinstance(exc, kind):
            return status, ident
    return 400, "invalid_params"


def is_api() -> bool:
    return request.path.startswith("/api/")


def json_error(status: int, ident: str, message: str, **extra: object) -> Response:
    resp = jsonify({"id": ident, "message": message, **extra})
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="paas"'
    return resp


def _page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("error.html", title=title, message=message, status=status), status


def init_app(app: Flask) -> None:
    @app.errorhandler(PaasError)
    def paas_error(exc: PaasError):  # type: ignore[no-untyped-def]
        status, ident = classify(exc)
        if is_api():
            resp = json_error(status, ident, str(exc), **getattr(exc, "api_extra", {}))
        else:
            resp = app.make_response(_page(status, TITLES.get(ident, "Error"), str(exc)))
        if isinstance(exc, Throttled):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):  # type: ignore[no-untyped-def]
        return _page(400, "Form refused", f"{exc.description} Reload the page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        status = exc.code or 500
        if is_api():
            ident = (exc.name or "error").lower().replace(" ", "_")
            return json_error(status, ident, exc.description or exc.name or "error")
        return _page(status, exc.name or "Error", exc.description or "")

    @app.errorhandler(docker.errors.DockerException)
    @app.errorhandler(requests.exceptions.ConnectionError)
    def engine_error(exc: Exception):  # type: ignore[no-untyped-def]
        log.warning("request %s %s: the Docker engine failed: %s", request.method, request.path, exc)
        message = "the Docker engine did not answer; try again in a moment"
        if is_api():
            return json_error(503, "engine_unavailable", message)
        return _page(503, "Docker engine unavailable", message)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("request %s %s failed", request.method, request.path)
        message = "internal error (see the dashboard log)"
        if is_api():
            return json_error(500, "internal_error", message)
        return _page(500, "Internal error", message)
