"""app.json, the app manifest: read from the pushed commit and parsed once per push.

The parsed manifest is kept with its build (as the JSON object it came from), so checks, cron and
addons of any release read the app.json of the commit that release runs, without going back to
git. Plugins read keys of their own from `Manifest.data` (`cron`: the cron plugin; `watch`: the
metrics plugin; each names them in `paas_app_json_keys` and checks them at push). What the core's
keys mean:

- `env`: config vars set on the first deploy (`"generator": "secret"` makes a random value;
  `"sync": true` sets the value again on every deploy);
- `formation`: the initial scale;
- `scripts.postdeploy`: a command run once after the first deploy (Heroku);
- `scripts.dokku.predeploy`: run in the new image before any process starts, on every deploy of a
  new build (like the Procfile's `release:`); `scripts.dokku.postdeploy`: after every such deploy;
- `healthchecks`: Dokku's startup checks per process type ({"web": [{"path": "/health", ...}]});
- `addons`: backing services to create and link (read by the service plugins);
- `scripts.pr-predestroy`: run in a review app before it is destroyed (Heroku);
- `environments.review`: what differs in a review app (the review_apps plugin): its `env`,
  `formation` and `scripts` override the top level's key by key, its `addons` replace them.
- `buildpacks`: the buildpacks to build with (BUILDPACK_URL and buildpacks:list come first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import json5

from paas.core import validation
from paas.errors import PaasError

MAX_QUANTITY = 100
# Keys we act on, and descriptive ones (Heroku's schema) that need nothing from us.
KNOWN_KEYS = {
    "env",
    "formation",
    "scripts",
    "healthchecks",
    "addons",
    "environments",
    "buildpacks",
}
ENVIRONMENTS = ("review",)  # the environments paas deploys (Heroku also has `test`, for its CI)
ENVIRONMENT_KEYS = ("env", "formation", "addons", "scripts")  # what one may override
DESCRIPTIVE_KEYS = {"name", "description", "keywords", "website", "repository", "logo", "success_url"}


class AppJsonError(PaasError):
    """app.json is present but unusable; the message says where."""


@dataclass(frozen=True)
class EnvSpec:
    value: str | None = None
    generator: str | None = None
    required: bool = True
    sync: bool = False  # Dokku's: set again on every deploy, over a value changed since


@dataclass(frozen=True)
class StartupCheck:
    """One app.json startup check (Dokku's format)."""

    name: str
    path: str = "/"
    content: str | None = None
    timeout: float = 5.0
    attempts: int = 3
    wait: float = 1.0
    initial_delay: float = 0.0
    uptime: float = 0.0


@dataclass(frozen=True)
class Manifest:
    env: dict[str, EnvSpec] = field(default_factory=dict)
    formation: dict[str, int] = field(default_factory=dict)
    buildpacks: tuple[str, ...] = ()  # over .buildpacks, under BUILDPACK_URL and buildpacks:list
    postdeploy: str | None = None
    dokku_predeploy: str | None = None
    dokku_postdeploy: str | None = None
    healthchecks: dict[str, list[StartupCheck]] = field(default_factory=dict)
    addons: list[Any] = field(default_factory=list)
    predestroy: str | None = None  # scripts.pr-predestroy: before a review app is destroyed
    data: dict = field(default_factory=dict)  # the object as read: what the build keeps

    def ignored_keys(self, plugin_keys: Iterable[str] = ()) -> list[str]:
        """Keys nothing reads (neither we nor a plugin: `paas_app_json_keys`): the build log
        names them, nothing fails."""
        top = [k for k in self.data if k not in KNOWN_KEYS | DESCRIPTIVE_KEYS | set(plugin_keys)]
        environments = self.data.get("environments") or {}
        for name, over in environments.items():
            if name not in ENVIRONMENTS:
                top.append(f"environments.{name}")
            else:
                top.extend(f"environments.{name}.{k}" for k in over if k not in ENVIRONMENT_KEYS)
        return sorted(top)

    def for_environment(self, name: str) -> Manifest:
        """The manifest as `environments.<name>` changes it: `env`, `formation` and `scripts`
        key by key over the top level's, `addons` replaced when it names any."""
        over = (self.data.get("environments") or {}).get(name) or {}
        if not over:
            return self
        merged = {k: v for k, v in self.data.items() if k != "environments"}
        for key in ("env", "formation", "scripts"):
            if key in over:
                merged[key] = {**(self.data.get(key) or {}), **over[key]}
        if "addons" in over:
            merged["addons"] = over["addons"]
        return from_data({**merged, "environments": self.data.get("environments")})


def parse(text: str) -> Manifest:
    """JSON with comments and trailing commas, as Dokku reads app.json (JSON5 is a superset)."""
    try:
        data = json5.loads(text)
    except ValueError as exc:
        where = str(exc).removeprefix("<string>:").strip()
        raise AppJsonError(f"app.json is not valid JSON (line {where})") from None
    except RecursionError:
        raise AppJsonError("app.json is not valid JSON (nested too deeply)") from None
    return from_data(data)


def from_data(data: object) -> Manifest:
    """The manifest from app.json's object (as parsed at push, or as kept with a build)."""
    if not isinstance(data, dict):
        raise AppJsonError("app.json must hold a JSON object")
    scripts = data.get("scripts") or {}
    if not isinstance(scripts, dict):
        raise AppJsonError("app.json: scripts must be an object")
    addons = data.get("addons") or []
    if not isinstance(addons, list):
        raise AppJsonError("app.json: addons must be a list")
    dokku = scripts.get("dokku") or {}
    if not isinstance(dokku, dict):
        raise AppJsonError("app.json: scripts.dokku must be an object of predeploy/postdeploy")
    _environments(data.get("environments"))
    return Manifest(
        env=_env(data.get("env") or {}),
        formation=_formation(data.get("formation") or {}),
        postdeploy=_script(scripts.get("postdeploy"), "scripts.postdeploy"),
        dokku_predeploy=_script(dokku.get("predeploy"), "scripts.dokku.predeploy"),
        dokku_postdeploy=_script(dokku.get("postdeploy"), "scripts.dokku.postdeploy"),
        healthchecks=_healthchecks(data.get("healthchecks")),
        addons=addons,
        buildpacks=_buildpacks(data.get("buildpacks")),
        predestroy=_script(scripts.get("pr-predestroy"), "scripts.pr-predestroy"),
        data=data,
    )


def _environments(raw: object) -> None:
    """The shape of `environments` (each one's parts are checked like the top level's when that
    environment is deployed, and here: a broken review environment fails the push that brings it)."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise AppJsonError(
            "app.json: environments must be an object of name: {env, formation, addons, scripts}"
        )
    for name, over in raw.items():
        if not isinstance(over, dict):
            raise AppJsonError(f"app.json: environments.{name} must be an object")
        if name not in ENVIRONMENTS:
            continue
        for key, kind in (("env", dict), ("formation", dict), ("scripts", dict), ("addons", list)):
            if key in over and not isinstance(over[key], kind):
                raise AppJsonError(
                    f"app.json: environments.{name}.{key} must be {'a list' if kind is list else 'an object'}"
                )
        try:
            from_data({**{k: v for k, v in over.items() if k in ENVIRONMENT_KEYS}})
        except AppJsonError as exc:
            raise AppJsonError(str(exc).replace("app.json: ", f"app.json: environments.{name}.", 1)) from None


def _buildpacks(raw: object) -> tuple[str, ...]:
    """`[{"url": "heroku/python"}, ...]` (Heroku's shape); which URLs are buildpacks is the build's
    rule (detect.parse_buildpack)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(
        isinstance(b, dict) and isinstance(b.get("url"), str) for b in raw
    ):
        raise AppJsonError('app.json: buildpacks must be a list of {"url": "..."}')
    return tuple(b["url"] for b in raw)


def _env(raw: object) -> dict[str, EnvSpec]:
    if not isinstance(raw, dict):
        raise AppJsonError("app.json: env must be an object of KEY: value or KEY: {value, generator}")
    env: dict[str, EnvSpec] = {}
    for key, spec in raw.items():
        try:
            validation.config_key(key)
        except PaasError as exc:
            raise AppJsonError(f"app.json: env: {exc}") from None
        if isinstance(spec, str):
            env[key] = EnvSpec(value=spec)
        elif isinstance(spec, dict):
            value = spec.get("value")
            generator = spec.get("generator")
            if value is not None and not isinstance(value, str | int | float | bool):
                raise AppJsonError(f"app.json: env.{key}.value must be a string")
            if generator not in (None, "secret"):
                raise AppJsonError(f'app.json: env.{key}.generator: only "secret" is supported')
            text = None if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
            env[key] = EnvSpec(text, generator, bool(spec.get("required", True)), spec.get("sync") is True)
        else:
            raise AppJsonError(f"app.json: env.{key} must be a string or an object")
        if env[key].value is not None:
            validation.config_value(key, env[key].value or "")
    return env


def _formation(raw: object) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise AppJsonError("app.json: formation must be an object of type: {quantity: N}")
    formation: dict[str, int] = {}
    for ptype, spec in raw.items():
        try:
            validation.process_type(ptype)
        except PaasError as exc:
            raise AppJsonError(f"app.json: formation: {exc}") from None
        quantity = spec.get("quantity", 1) if isinstance(spec, dict) else None
        if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 <= quantity <= MAX_QUANTITY:
            raise AppJsonError(
                f"app.json: formation.{ptype}.quantity must be a number from 0 to {MAX_QUANTITY}"
            )
        formation[ptype] = quantity
    return formation


def _script(raw: object, where: str) -> str | None:
    if isinstance(raw, dict):
        raw = raw.get("command")
    if raw is not None and (not isinstance(raw, str) or not raw.strip()):
        raise AppJsonError(f"app.json: {where} must be a command string")
    return raw


def _number(check: dict, key: str, default: float, low: float, high: float) -> float:
    value = check.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise AppJsonError(f"app.json healthchecks: {key} must be a number from {low:g} to {high:g}")
    return float(value)


MAX_CHECK_SECONDS = 600


def _healthchecks(raw: object) -> dict[str, list[StartupCheck]]:
    """The startup checks by process type (liveness/readiness are not deploy checks)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise AppJsonError("app.json healthchecks must be an object: {process type: [checks]}")
    out: dict[str, list[StartupCheck]] = {}
    for ptype, checks in raw.items():
        validation.process_type(ptype)
        if not isinstance(checks, list):
            raise AppJsonError(f"app.json healthchecks.{ptype} must be a list of checks")
        for i, check in enumerate(checks):
            if not isinstance(check, dict):
                raise AppJsonError(f"app.json healthchecks.{ptype}[{i}] must be an object")
            if check.get("type", "startup") != "startup":
                continue
            path = check.get("path", "/")
            if not isinstance(path, str) or not validation.url_path(path):
                raise AppJsonError(f"app.json healthchecks.{ptype}[{i}].path must be a URL path like /health")
            content = check.get("content")
            if content is not None and not isinstance(content, str):
                raise AppJsonError(f"app.json healthchecks.{ptype}[{i}].content must be a string")
            out.setdefault(ptype, []).append(
                StartupCheck(
                    name=validation.printable(str(check.get("name") or f"{ptype} {path}"))[:100],
                    path=path,
                    content=content,
                    timeout=_number(check, "timeout", 5, 0.1, 600),
                    attempts=int(_number(check, "attempts", 3, 1, 100)),
                    wait=_number(check, "wait", 1, 0, 600),
                    initial_delay=_number(check, "initialDelay", 0, 0, 600),
                    uptime=_number(check, "uptime", 0, 0, 600),
                )
            )
        worst = sum(
            c.initial_delay + c.attempts * (c.timeout + c.wait) + c.uptime for c in out.get(ptype, [])
        )
        if worst > MAX_CHECK_SECONDS:  # a deploy (and the request or push waiting on it) must end
            raise AppJsonError(
                f"app.json healthchecks.{ptype} could take {worst:g} s (initialDelay + attempts x"
                f" (timeout + wait) + uptime); the limit is {MAX_CHECK_SECONDS} s per process type"
            )
    return out


@dataclass(frozen=True)
class PushedSource:
    """What a pre-build hook sees of a push: the commit, its manifest and its files."""

    commit: str
    manifest: Manifest
    read: Callable[[str], str | None]  # a file of the commit by path, None when absent
