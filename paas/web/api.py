"""The JSON API under /api/v1, shaped like Heroku's Platform API; bearer tokens only.

Each endpoint calls the service function its SSH command calls: same release, same event (the
token's user as actor), same message, in `{"id": ..., "message": ...}` with a fitting status.

A change that deploys answers when it is done, with the new state (what scripts and CI expect:
the answer says whether it took, and a failure carries the end of its output). Such a wait holds
a worker thread, so only half of a worker's threads may wait on deploys at once; past that the
call gets 429 and Retry-After, and the pages keep their threads. A client that would rather not
wait sends `Prefer: respond-async` and gets 202 with the deploy's job (as the dashboard's forms
do), to poll at its URL or follow at its `/stream`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, g, jsonify, request, url_for

from paas.core import validation
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError, Throttled
from paas.services import apps as apps_service
from paas.services import config as config_service
from paas.services import domains as domains_service
from paas.services import formation as formation_service
from paas.services import jobs as jobs_service
from paas.services import logs as logs_service
from paas.services import lookup, overview, quotas
from paas.services import metrics as metrics_service
from paas.services import processes as processes_service
from paas.services import releases as releases_service
from paas.services import users as users_service
from paas.store import Release, User
from paas.web import streams
from paas.web.args import int_arg
from paas.web.openapi import document

bp = Blueprint("api", __name__, url_prefix="/api/v1")
T = TypeVar("T")
OUTPUT_LINES = 30


def ctx() -> Context:
    return g.ctx


def body() -> dict[str, Any]:
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise PaasError("the request body must be a JSON object")
    return data


def _deploy_slots() -> threading.BoundedSemaphore:
    """This worker's share of threads that may wait on a deploy (half of them, at least one)."""
    threads = ctx().settings.web_threads
    return ctx().shared("api-deploy-slots", lambda: threading.BoundedSemaphore(max(1, threads // 2)))


def deploying(fn: Callable[[BuildLog], T]) -> T:
    """Run a change that deploys; if it fails, the error carries the end of its output."""
    slots = _deploy_slots()
    if not slots.acquire(blocking=False):
        raise Throttled("too many deploys are waiting on this dashboard worker; try again shortly", 5)
    log = BuildLog()
    try:
        return fn(log)
    except PaasError as exc:
        exc.api_extra = {"output": log.tail(OUTPUT_LINES)}  # type: ignore[attr-defined]
        raise
    finally:
        slots.release()


def wants_async() -> bool:
    """RFC 7240 `Prefer: respond-async`: start the deploy as a job and answer 202 at once."""
    return "respond-async" in request.headers.get("Prefer", "").lower()


def _outcome(result: object) -> str:
    if isinstance(result, Release):
        return f"{result.description}: released v{result.version}"
    return "done"


def _job_json(job: jobs_service.Job) -> dict:
    return {**job.as_json(), "url": url_for("api.job", app=job.app, job_id=job.id)}


def started(app: str, operation: str, title: str, fn: Callable[[BuildLog], object]) -> Response:
    """The deploy as a background job (`fn` must not use the request: it runs after it)."""
    job = jobs_service.start(ctx(), app, operation, title, lambda log: _outcome(fn(log)))
    resp = jsonify(_job_json(job))
    resp.status_code = 202
    resp.headers["Location"] = url_for("api.job", app=job.app, job_id=job.id)
    resp.headers["Preference-Applied"] = "respond-async"
    return resp


def _user(u: User) -> dict:
    return {"name": u.name, "admin": u.is_admin, "created_at": u.created_at}


def _release_header(resp: Any, release: Release | None) -> Any:
    if release is not None:
        resp.headers["Paas-Release"] = f"v{release.version}"
    return resp


# accounts
@bp.get("/account")
def account():  # type: ignore[no-untyped-def]
    return jsonify(_user(g.user))


@bp.get("/account/quotas")
def account_quotas():  # type: ignore[no-untyped-def]
    return jsonify(quotas.report(ctx())[0])


@bp.get("/users")
def users():  # type: ignore[no-untyped-def]
    return jsonify([_user(u) for u in users_service.list_users(ctx())])


# apps
@bp.get("/apps")
def apps():  # type: ignore[no-untyped-def]
    return jsonify([s.as_json() for s in overview.summaries(ctx())])


def _app_json(name: str) -> dict:
    return {**apps_service.app_info(ctx(), name), "status": overview.summary(ctx(), name).status}


@bp.post("/apps")
def create_app():  # type: ignore[no-untyped-def]
    name = body().get("name")
    if not isinstance(name, str):
        raise PaasError('give the app\'s name: {"name": "my-app"}')
    app = apps_service.create_app(ctx(), name)
    return jsonify(_app_json(app.name)), 201


@bp.get("/apps/<app>")
def app_info(app: str):  # type: ignore[no-untyped-def]
    return jsonify(_app_json(app))


@bp.delete("/apps/<app>")
def destroy(app: str):  # type: ignore[no-untyped-def]
    apps_service.destroy_app(ctx(), app, confirm=app)  # the DELETE is the confirmation
    return jsonify({"name": app, "destroyed": True})


# config
@bp.get("/apps/<app>/config")
def config(app: str):  # type: ignore[no-untyped-def]
    return jsonify(config_service.get_config(ctx(), app))


@bp.patch("/apps/<app>/config")
def config_patch(app: str):  # type: ignore[no-untyped-def]
    changes = body()
    values: dict[str, str] = {}
    unset: list[str] = []
    for key, value in changes.items():
        if value is None:
            unset.append(key)
        elif isinstance(value, str):
            values[key] = value
        else:
            raise PaasError(f"the value of {key} must be a string (or null to unset it)")
    c = ctx()

    def change(log: BuildLog) -> Release | None:
        return config_service.update_config(c, app, values, unset, log)

    if wants_async():
        return started(app, "config:set", "Update config", change)
    release = deploying(change)
    return _release_header(jsonify(config_service.get_config(ctx(), app)), release)


# formation and dynos
def _formation(app: str) -> list[dict]:
    return [{"type": t, "quantity": n} for t, n in formation_service.get_formation(ctx(), app).items()]


def _scale(app: str, pairs: list[tuple[Any, Any]]) -> Any:
    changes, c = formation_service.check_changes(pairs), ctx()

    def change(log: BuildLog) -> Release | None:
        return formation_service.scale(c, app, changes, log)

    if wants_async():
        return started(app, "ps:scale", "Scale " + " ".join(f"{t}={n}" for t, n in changes.items()), change)
    release = deploying(change)
    return _release_header(jsonify(_formation(app)), release)


@bp.get("/apps/<app>/formation")
def formation(app: str):  # type: ignore[no-untyped-def]
    return jsonify(_formation(app))


@bp.patch("/apps/<app>/formation")
def formation_batch(app: str):  # type: ignore[no-untyped-def]
    updates = body().get("updates")
    if not isinstance(updates, list) or not all(isinstance(u, dict) for u in updates):
        raise PaasError('give {"updates": [{"type": "web", "quantity": 2}, ...]}')
    return _scale(app, [(u.get("type"), u.get("quantity")) for u in updates])


@bp.patch("/apps/<app>/formation/<ptype>")
def formation_one(app: str, ptype: str):  # type: ignore[no-untyped-def]
    return _scale(app, [(ptype, body().get("quantity"))])


@bp.get("/apps/<app>/dynos")
def dynos(app: str):  # type: ignore[no-untyped-def]
    return jsonify([p.as_json() for p in processes_service.list_processes(ctx(), app)])


@bp.delete("/apps/<app>/dynos")
def restart(app: str):  # type: ignore[no-untyped-def]
    ptype, c = request.args.get("type") or None, ctx()

    def change(log: BuildLog) -> None:
        processes_service.restart(c, app, ptype, log)

    if wants_async():
        if ptype is not None:
            validation.process_type(ptype)
        return started(app, "ps:restart", "Restart" + (f" {ptype}" if ptype else ""), change)
    deploying(change)
    return jsonify([p.as_json() for p in processes_service.list_processes(ctx(), app)])


# releases
@bp.get("/apps/<app>/releases")
def releases(app: str):  # type: ignore[no-untyped-def]
    return jsonify([v.as_json() for v in releases_service.list_releases(ctx(), app)])


@bp.post("/apps/<app>/releases")
def rollback(app: str):  # type: ignore[no-untyped-def]
    target = body().get("release")
    if target is not None and (isinstance(target, bool) or not isinstance(target, str | int)):
        raise PaasError('give the release to roll back to: {"release": "v3"} (or null for the previous)')
    version, c = None if target is None else str(target), ctx()

    def change(log: BuildLog) -> Release:
        return releases_service.rollback(c, app, version, log)

    if wants_async():
        return started(
            app, "releases:rollback", f"Roll back to {version[:20]}" if version else "Roll back", change
        )
    release = deploying(change)
    view = releases_service.release_info(ctx(), app, f"v{release.version}")
    return _release_header(jsonify(view.as_json()), release), 201


@bp.get("/apps/<app>/releases/<version>")
def release(app: str, version: str):  # type: ignore[no-untyped-def]
    return jsonify(releases_service.release_info(ctx(), app, version).as_json())


@bp.get("/apps/<app>/releases/<version>/build-output")
def build_output(app: str, version: str):  # type: ignore[no-untyped-def]
    view = releases_service.release_info(ctx(), app, version)
    output = logs_service.build_output(ctx(), app, f"v{view.release.version}")
    return jsonify({"version": view.release.version, "output": output})


# jobs: deploys started with Prefer: respond-async
@bp.get("/apps/<app>/jobs/<job_id>")
def job(app: str, job_id: str):  # type: ignore[no-untyped-def]
    found = jobs_service.get(ctx(), app, job_id)
    text, _ = jobs_service.output(ctx(), app, job_id)
    return jsonify({**_job_json(found), "output": text.splitlines()})


@bp.get("/apps/<app>/jobs/<job_id>/stream")
def job_stream(app: str, job_id: str):  # type: ignore[no-untyped-def]
    jobs_service.get(ctx(), app, job_id)  # errors now, as JSON, not inside the stream
    last = request.headers.get("Last-Event-ID") or "0"
    offset = int(last) if last.isascii() and last.isdigit() else 0
    c = ctx()
    return streams.guarded(lambda alive: streams.job_events(c, app, job_id, offset, alive))


# domains
def _domains(app: str) -> list[dict]:
    default = lookup.app_url(ctx(), app).split("//", 1)[1].split(":")[0]
    custom = domains_service.list_domains(ctx(), app)
    return [{"hostname": default, "kind": "default"}] + [{"hostname": h, "kind": "custom"} for h in custom]


@bp.get("/apps/<app>/domains")
def domains(app: str):  # type: ignore[no-untyped-def]
    return jsonify(_domains(app))


@bp.post("/apps/<app>/domains")
def domain_add(app: str):  # type: ignore[no-untyped-def]
    hostname = body().get("hostname")
    if not isinstance(hostname, str):
        raise PaasError('give the domain: {"hostname": "www.example.com"}')
    domains_service.add_domains(ctx(), app, [hostname])
    return jsonify({"hostname": validation.domain(hostname), "kind": "custom"}), 201


@bp.delete("/apps/<app>/domains/<hostname>")
def domain_remove(app: str, hostname: str):  # type: ignore[no-untyped-def]
    domains_service.remove_domains(ctx(), app, [hostname])
    return jsonify({"hostname": validation.domain(hostname), "kind": "custom"})


# logs and metrics
@bp.get("/apps/<app>/logs")
def logs(app: str):  # type: ignore[no-untyped-def]
    lines = logs_service.recent(ctx(), app, int_arg("lines", 100), request.args.get("type") or None)
    return jsonify({"lines": lines})


@bp.get("/apps/<app>/log-stream")
def log_stream(app: str):  # type: ignore[no-untyped-def]
    ptype, last = request.args.get("type") or None, request.headers.get("Last-Event-ID") or None
    return streams.log_stream(ctx(), app, ptype, int_arg("lines", 100), last)


@bp.get("/apps/<app>/metrics")
def metrics(app: str):  # type: ignore[no-untyped-def]
    history = metrics_service.current(ctx(), app, seconds=int_arg("seconds", 600))
    return jsonify(
        {
            dyno: [
                {"at": s.at, "cpu_percent": s.cpu_percent, "mem_bytes": s.mem_bytes, "mem_limit": s.mem_limit}
                for s in samples
            ]
            for dyno, samples in history.items()
        }
    )


@bp.get("/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    return jsonify(document())
