"""The dashboard's pages and form actions.

A form action calls the same service function as the SSH command (same release, event, and
message), then redirects (POST/redirect/GET). A change that deploys (scale, restart, config,
rollback ...) runs as a background job (`paas.services.jobs`): the form is answered at once with
the job's page, which streams its output, so no deploy holds a worker thread; a quick change
(domains) redirects back with the outcome as a flash message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps

from flask import Blueprint, Response, g, redirect, render_template, request, url_for

from paas.core import validation
from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError, PermissionDenied
from paas.services import access, lookup, overview, quotas
from paas.services import apps as apps_service
from paas.services import config as config_service
from paas.services import domains as domains_service
from paas.services import events as events_service
from paas.services import formation as formation_service
from paas.services import jobs as jobs_service
from paas.services import logs as logs_service
from paas.services import metrics as metrics_service
from paas.services import processes as processes_service
from paas.services import releases as releases_service
from paas.services import users as users_service
from paas.store import Release
from paas.web import charts, streams
from paas.web.args import int_arg
from paas.web.auth import flash

bp = Blueprint("pages", __name__)
SHOWN_RELEASES = 20


def ctx() -> Context:
    return g.ctx


@bp.app_template_filter("ago")
def ago(stamp: str | None) -> str:
    """2026-11-28T03:00:51Z -> "5 min ago" (the exact time goes in a title attribute)."""
    if not stamp:
        return "–"
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return stamp
    seconds = int((datetime.now(UTC) - then).total_seconds())
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return stamp


def _released(release: Release | None, what: str) -> str:
    if release is None:
        return f"{what}. Not restarted: the change applies at the next deploy or restart"
    return f"{what}: released v{release.version}"


def action(anchor: str) -> Callable:
    """A quick form action on one app: run it, flash the outcome, go back. A refusal by the
    permission table is its page (403, or 404 for an app the actor cannot view, as the API): the
    app page showed no such button, so only a forged POST meets it."""

    def wrap(fn: Callable[[str], str]) -> Callable:
        @wraps(fn)
        def view(app: str) -> Response:
            try:
                flash(fn(app), "ok")
            except PaasError as exc:
                if isinstance(exc, PermissionDenied) or not access.allowed_on(ctx(), app):
                    raise
                flash(str(exc), "error")
            if not access.allowed_on(ctx(), app):  # they took their own access away
                return redirect(url_for("pages.apps"), 303)
            return redirect(url_for("pages.app", app=app) + f"#{anchor}", 303)

        return view

    return wrap


Deploy = tuple[str, jobs_service.Work]  # the job's title and its work
JOB_ANCHORS = ("processes", "config", "releases")  # where on the app page a job's form was


def deploys(anchor: str, operation: str) -> Callable:
    """A form action that deploys: the view parses the form (in the request) and returns the
    work; it runs as a job and the browser goes to the job's page. A form that does not parse
    goes back with the error; a change the user may not make is refused as in `action`."""

    def wrap(fn: Callable[[str], Deploy]) -> Callable:
        @wraps(fn)
        def view(app: str) -> Response:
            try:
                title, work = fn(app)
                job = jobs_service.start(ctx(), app, operation, title, work)
            except PaasError as exc:
                if isinstance(exc, PermissionDenied) or not access.allowed_on(ctx(), app):
                    raise  # its page, as in `action`
                flash(str(exc), "error")
                return redirect(url_for("pages.app", app=app) + f"#{anchor}", 303)
            return redirect(url_for("pages.job", app=job.app, job_id=job.id, back=anchor), 303)

        return view

    return wrap


# the apps
@bp.get("/")
def apps():  # type: ignore[no-untyped-def]
    c = ctx()
    summaries = overview.summaries(c)
    may = access.allowed_on_apps(c, lookup.list_apps(c))
    mine = quotas.report(c)[0]
    usage = [
        (name, quotas.show(name, q["used"]), quotas.show(name, q["limit"]), q["used"] >= q["limit"])
        for name, q in mine["quotas"].items()
    ]
    return render_template(
        "apps.html",
        apps=summaries,
        may=may,
        may_create=access.may_create(c),
        usage=usage,
        quota_admin=mine["admin"],
    )


@bp.post("/apps")
def create_app():  # type: ignore[no-untyped-def]
    name = request.form.get("name", "")
    try:
        created = apps_service.create_app(ctx(), name)
    except PaasError as exc:
        flash(str(exc), "error")
        return redirect(url_for("pages.apps"), 303)
    flash(f"Created {created.name}: git remote add paas paas:{created.name}", "ok")
    return redirect(url_for("pages.app", app=created.name), 303)


@bp.post("/apps/<app>/destroy")
def destroy(app: str):  # type: ignore[no-untyped-def]
    try:
        apps_service.destroy_app(ctx(), app, request.form.get("confirm", ""))
    except PaasError as exc:
        if isinstance(exc, PermissionDenied) or not access.allowed_on(ctx(), app):
            raise
        flash(str(exc), "error")
        back = request.form.get("back") == "app"
        return redirect(url_for("pages.app", app=app) if back else url_for("pages.apps"), 303)
    flash(f"Destroyed {app}", "ok")
    return redirect(url_for("pages.apps"), 303)


# one app
@bp.get("/apps/<app>")
def app(app: str):  # type: ignore[no-untyped-def]
    c = ctx()
    summary = overview.summary(c, app)
    info = apps_service.app_info(c, app)
    procs = processes_service.list_processes(c, app)
    formation = formation_service.get_formation(c, app)
    types = sorted(set(formation) | {p.type for p in procs})
    may = access.allowed_on(c, app)
    reveal = request.args.get("reveal") == "1" and may("config:values")
    now = time.time()
    cpu, mem = charts.charts(metrics_service.history(c, app, at=now), now)
    return render_template(
        "app.html",
        app=summary,
        may=may,
        team=access.list_access(c, app) if may("access") else None,
        permissions=access.PERMISSIONS,
        user_names=[u.name for u in users_service.list_users(c)] if access.is_admin(c) else [],
        info=info,
        types=[(t, formation.get(t, 0), [p for p in procs if p.type == t]) for t in types],
        config=config_service.get_config(c, app),
        reveal=reveal,
        domains=domains_service.list_domains(c, app),
        releases=releases_service.list_releases(c, app)[:SHOWN_RELEASES],
        events=list(reversed(events_service.list_events(c, 12, app))),
        cpu=cpu,
        mem=mem,
    )


@bp.post("/apps/<app>/scale")
@deploys("processes", "ps:scale")
def scale(app: str) -> Deploy:
    changes = formation_service.parse_scale_args(
        [f"{request.form.get('type', '')}={request.form.get('quantity', '')}"]
    )
    c, what = ctx(), "Scaled " + " ".join(f"{t}={n}" for t, n in changes.items())

    def work(log: BuildLog) -> str:
        release = formation_service.scale(c, app, changes, log)
        if release is None:
            return what + ". Stored: applies when the app is deployed or started"
        return what + f": released v{release.version}"

    return what.replace("Scaled", "Scale", 1), work


@bp.post("/apps/<app>/restart")
@deploys("processes", "ps:restart")
def restart(app: str) -> Deploy:
    c, ptype = ctx(), request.form.get("type") or None
    if ptype is not None:
        validation.process_type(ptype)
    what = f"{app}" + (f" ({ptype})" if ptype else "")

    def work(log: BuildLog) -> str:
        processes_service.restart(c, app, ptype, log)
        return f"Restarted {what}"

    return f"Restart {what}", work


@bp.post("/apps/<app>/stop")
@deploys("processes", "ps:stop")
def stop(app: str) -> Deploy:
    c = ctx()

    def work(log: BuildLog) -> str:
        return f"Stopped {processes_service.stop(c, app, log)} process(es) of {app}"

    return f"Stop {app}", work


@bp.post("/apps/<app>/start")
@deploys("processes", "ps:start")
def start(app: str) -> Deploy:
    c = ctx()

    def work(log: BuildLog) -> str:
        processes_service.start(c, app, log)
        return f"Started {app}"

    return f"Start {app}", work


@bp.post("/apps/<app>/config")
@deploys("config", "config:set")
def config_set(app: str) -> Deploy:
    c, key = ctx(), request.form.get("key", "")
    # Browsers send a textarea's line breaks as CRLF (HTML forms do); the value typed had LF.
    value = request.form.get("value", "").replace("\r\n", "\n")
    validation.config_key(key)

    def work(log: BuildLog) -> str:
        return _released(config_service.set_config(c, app, {key: value}, log), f"Set {key}")

    return f"Set {key}", work


@bp.post("/apps/<app>/config/unset")
@deploys("config", "config:unset")
def config_unset(app: str) -> Deploy:
    c, key = ctx(), request.form.get("key", "")
    validation.config_key(key)

    def work(log: BuildLog) -> str:
        return _released(config_service.unset_config(c, app, [key], log), f"Unset {key}")

    return f"Unset {key}", work


@bp.post("/apps/<app>/domains")
@action("domains")
def domain_add(app: str) -> str:
    hostname = request.form.get("hostname", "")
    domains_service.add_domains(ctx(), app, [hostname])
    return f"Added {validation.domain(hostname)}"


@bp.post("/apps/<app>/domains/remove")
@action("domains")
def domain_remove(app: str) -> str:
    hostname = request.form.get("hostname", "")
    domains_service.remove_domains(ctx(), app, [hostname])
    return f"Removed {hostname}"


@bp.post("/apps/<app>/rollback")
@deploys("releases", "releases:rollback")
def rollback(app: str) -> Deploy:
    c, version = ctx(), request.form.get("version") or None

    def work(log: BuildLog) -> str:
        release = releases_service.rollback(c, app, version, log)
        return f"{release.description}: released v{release.version}"

    return f"Roll back to {version[:20]}" if version else "Roll back", work


@bp.get("/apps/<app>/jobs/<job_id>")
def job(app: str, job_id: str):  # type: ignore[no-untyped-def]
    """A deploy started here: its output so far, then live from the stream server."""
    found = jobs_service.get(ctx(), app, job_id)
    output, offset = jobs_service.output(ctx(), app, job_id)
    back = request.args.get("back", "")
    anchor = back if back in JOB_ANCHORS else ""
    return render_template("job.html", job=found, output=output, offset=offset, anchor=anchor)


@bp.get("/apps/<app>/jobs/<job_id>/done")
def job_done(app: str, job_id: str):  # type: ignore[no-untyped-def]
    """Where a job's page sends the browser once the job succeeded: back to the app, with the
    outcome as a flash message (as a form that does not deploy answers)."""
    found = jobs_service.get(ctx(), app, job_id)
    if not found.done:
        return redirect(url_for("pages.job", app=found.app, job_id=found.id), 303)
    flash(found.message, "ok" if found.state == "succeeded" else "error")
    back = request.args.get("back", "")
    anchor = f"#{back}" if back in JOB_ANCHORS else ""
    return redirect(url_for("pages.app", app=found.app) + anchor, 303)


@bp.get("/apps/<app>/jobs/<job_id>/stream")
def job_stream(app: str, job_id: str):  # type: ignore[no-untyped-def]
    jobs_service.get(ctx(), app, job_id)  # errors now, as a page, not inside the stream
    last = request.headers.get("Last-Event-ID") or request.args.get("from") or "0"
    offset = int(last) if last.isascii() and last.isdigit() else 0
    c = ctx()
    return streams.guarded(lambda alive: streams.job_events(c, app, job_id, offset, alive))


@bp.get("/apps/<app>/releases/<version>/build")
def build_output(app: str, version: str):  # type: ignore[no-untyped-def]
    view = releases_service.release_info(ctx(), app, version)
    output = logs_service.build_output(ctx(), app, f"v{view.release.version}")
    return render_template("build.html", app=app, view=view, output=output)


@bp.get("/apps/<app>/logs")
def logs(app: str):  # type: ignore[no-untyped-def]
    lines = int_arg("lines", 200)
    text = "\n".join(logs_service.recent(ctx(), app, lines, request.args.get("type") or None))
    return Response(text + "\n", mimetype="text/plain")


@bp.get("/apps/<app>/logs/stream")
def log_stream(app: str):  # type: ignore[no-untyped-def]
    ptype, last = request.args.get("type") or None, request.headers.get("Last-Event-ID") or None
    return streams.log_stream(ctx(), app, ptype, int_arg("lines", 100), last)


@bp.get("/apps/<app>/metrics")
def metrics(app: str):  # type: ignore[no-untyped-def]
    cpu, mem = charts.charts(metrics_service.current(ctx(), app), time.time())
    return render_template("_metrics.html", cpu=cpu, mem=mem)


# access: who else may do what with the app
def _permissions() -> str:
    """The ticked boxes as `view,deploy`; view is always given (the service adds it)."""
    return ",".join(request.form.getlist("permissions")) or "view"


@bp.post("/apps/<app>/access")
@action("access")
def access_add(app: str) -> str:
    grant = access.add_access(ctx(), app, request.form.get("user", "").strip(), _permissions())
    return f"{grant.user} may now {', '.join(grant.permissions)} {app}"


@bp.post("/apps/<app>/access/update")
@action("access")
def access_update(app: str) -> str:
    grant = access.update_access(ctx(), app, request.form.get("user", ""), _permissions())
    return f"{grant.user} may now {', '.join(grant.permissions)} {app}"


@bp.post("/apps/<app>/access/remove")
@action("access")
def access_remove(app: str) -> str:
    user = request.form.get("user", "")
    access.remove_access(ctx(), app, user)
    return f"{user} has no access to {app} any more"


@bp.post("/apps/<app>/transfer")
@action("access")
def transfer(app: str) -> str:
    moved = apps_service.transfer(ctx(), app, request.form.get("user", "").strip())
    return f"{moved.name} now belongs to {request.form.get('user', '').strip()}"
