"""`scheduler:set <app> selected swarm|docker-local`: move an app to another scheduler without downtime.

The current release is deployed on the new scheduler (the same checks as any deploy); the route
switches to the new processes; only then do the old scheduler's processes stop. A failed check
leaves the app where it was, still serving. A stopped or undeployed app only records the choice.
"""

from __future__ import annotations

import re
from dataclasses import replace

from paas.core.context import Context
from paas.core.output import BuildLog
from paas.errors import PaasError
from paas.services import access, properties, schedulers
from paas.services.deploy import deploy_release
from paas.services.locks import app_lock
from paas.store import App


def set_scheduler(ctx: Context, app_name: str, name: str, log: BuildLog) -> App:
    app = access.authorize(ctx, app_name, "scheduler:set")
    target = schedulers.validate(ctx, name)
    with app_lock(ctx, app.name):
        app = ctx.store.get_app_by_id(app.id) or app
        if app.scheduler == target:
            log.step(f"{app.name} already runs on {target}")
            return app
        schedulers.require_ready(ctx, target)
        release = ctx.store.current_release(app.id)
        if release is not None and not app.stopped:
            log.step(f"Moving {app.name} to {target}: deploying v{release.version} there")
            formation = {**release.formation, **ctx.store.get_formation(app.id)}
            deploy_release(ctx, app, replace(release, formation=formation), log, scheduler=target)
        ctx.store.set_app_scheduler(app.id, target)
        ctx.store.add_event(app.name, ctx.actor, "scheduler:set", f"{app.scheduler} -> {target}")
        log.step(f"{app.name} now runs on {target}")
        return ctx.store.get_app_by_id(app.id) or app


def default_scheduler(ctx: Context) -> str:
    """What runs a new app: `scheduler:set --global selected`, else PAAS_SCHEDULER (refused when
    no plugin loaded gives it: a plugin turned off)."""
    return schedulers.validate(ctx, properties.value(ctx, None, "scheduler", "selected"))


def _apply(ctx: Context, app: App | None, log: BuildLog) -> None:
    """An app's `selected` changed: it moves to the computed scheduler now. The server's value
    is the scheduler new apps get."""
    if app is not None:
        target = properties.raw(ctx, app, "scheduler", "selected") or default_scheduler(ctx)
        set_scheduler(ctx, app.name, target, log)


SHELL = re.compile(r"[A-Za-z0-9_./+-]{1,255}")


def _shell(ctx: Context, value: str) -> str:
    if not SHELL.fullmatch(value) or value.startswith("-"):
        raise PaasError(f"shell: {value!r} is not a program name or path (e.g. /bin/sh)")
    return value


def shell(ctx: Context, app: App) -> str:
    """The program `enter` starts without a command and that `run` hands its command line to
    (`<shell> -c`); "" when neither the app nor the server names one (the image's own)."""
    return properties.value(ctx, app, "scheduler", "shell")


properties.register(
    properties.Namespace(
        "scheduler",
        props=(
            properties.Prop("shell", check=_shell),
            properties.Prop(
                "selected",
                default=lambda ctx: ctx.settings.scheduler,
                check=schedulers.validate,
                computed=lambda ctx, app: app.scheduler,  # where it runs now
                changed=_apply,
            ),
        ),
    )
)
