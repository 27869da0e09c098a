"""Health checks before traffic moves: defaults, app.json `healthchecks`, checks:disable/enable.

Default for web: the process answers HTTP on $PORT within the boot timeout; for every type: still
running after the settle period. app.json may add startup checks per process type in Dokku's
format: {"healthchecks": {"web": [{"type": "startup", "path": "/health", "content": "ok",
"timeout": 5, "attempts": 3, "wait": 1, "initialDelay": 0, "uptime": 0}]}}.
"""

from __future__ import annotations

import json

from dulwich.repo import Repo

from paas.buildpacks import source
from paas.core import validation
from paas.core.context import Context
from paas.errors import PaasError
from paas.scheduler.health import StartupCheck
from paas.services import apps as apps_service
from paas.store import App, Build

DISABLED_SETTING = "checks_disabled"
ALL = "_all_"


def _number(check: dict, key: str, default: float, low: float, high: float) -> float:
    value = check.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise PaasError(f"app.json healthchecks: {key} must be a number from {low:g} to {high:g}")
    return float(value)


def parse_healthchecks(text: str) -> dict[str, list[StartupCheck]]:
    """The startup checks of app.json, by process type (liveness/readiness are not deploy checks)."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}  # the buildpack step reports a broken app.json
    raw = data.get("healthchecks") if isinstance(data, dict) else None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PaasError("app.json healthchecks must be an object: {process type: [checks]}")
    out: dict[str, list[StartupCheck]] = {}
    for ptype, checks in raw.items():
        validation.process_type(ptype)
        if not isinstance(checks, list):
            raise PaasError(f"app.json healthchecks.{ptype} must be a list of checks")
        for i, check in enumerate(checks):
            if not isinstance(check, dict):
                raise PaasError(f"app.json healthchecks.{ptype}[{i}] must be an object")
            if check.get("type", "startup") != "startup":
                continue
            path = check.get("path", "/")
            if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in " \r\n"):
                raise PaasError(f"app.json healthchecks.{ptype}[{i}].path must be a URL path like /health")
            content = check.get("content")
            if content is not None and not isinstance(content, str):
                raise PaasError(f"app.json healthchecks.{ptype}[{i}].content must be a string")
            out.setdefault(ptype, []).append(
                StartupCheck(
                    name=str(check.get("name") or f"{ptype} {path}"),
                    path=path,
                    content=content,
                    timeout=_number(check, "timeout", 5, 0.1, 600),
                    attempts=int(_number(check, "attempts", 3, 1, 100)),
                    wait=_number(check, "wait", 1, 0, 600),
                    initial_delay=_number(check, "initialDelay", 0, 0, 600),
                    uptime=_number(check, "uptime", 0, 0, 600),
                )
            )
    return out


def checks_for(ctx: Context, app: App, build: Build) -> dict[str, list[StartupCheck]]:
    """The app.json startup checks of the commit a build was made from."""
    repo_path = ctx.settings.repos_dir / f"{app.name}.git"
    if not repo_path.exists():
        return {}
    repo = Repo(str(repo_path))
    try:
        text = source.read_file(repo, build.commit_sha, "app.json")
    except KeyError:
        return {}
    finally:
        repo.close()
    return parse_healthchecks(text) if text else {}


def disabled_types(ctx: Context, app: App) -> set[str]:
    raw = ctx.store.get_setting(app.id, DISABLED_SETTING) or ""
    return {t for t in raw.split(",") if t}


def is_disabled(disabled: set[str], ptype: str) -> bool:
    return ALL in disabled or ptype in disabled


def set_checks(ctx: Context, app_name: str, ptypes: list[str], enabled: bool) -> set[str]:
    """checks:enable / checks:disable, for some process types or (none given) all of them."""
    app = apps_service.get_app(ctx, app_name)
    for t in ptypes:
        validation.process_type(t)
    disabled = disabled_types(ctx, app)
    targets = set(ptypes) or {ALL}
    if enabled:
        disabled = set() if not ptypes else disabled - targets
    else:
        disabled |= targets
    ctx.store.set_setting(app.id, DISABLED_SETTING, ",".join(sorted(disabled)) or None)
    action = "checks:enable" if enabled else "checks:disable"
    ctx.store.add_event(app.name, ctx.actor, action, " ".join(ptypes) or "all")
    return disabled


def report(ctx: Context, app_name: str) -> dict:
    app = apps_service.get_app(ctx, app_name)
    disabled = disabled_types(ctx, app)
    release = ctx.store.current_release(app.id)
    build = ctx.store.get_build(release.build_id) if release and release.build_id else None
    custom = checks_for(ctx, app, build) if build else {}
    types = sorted(set(build.processes if build else {}) | set(custom))
    return {
        "disabled": sorted("all" if t == ALL else t for t in disabled),
        "types": {
            t: {
                "enabled": not is_disabled(disabled, t),
                "default": "answers HTTP on $PORT, then stays up" if t == "web" else "stays up",
                "custom": [c.name for c in custom.get(t, [])],
            }
            for t in types
        },
    }
