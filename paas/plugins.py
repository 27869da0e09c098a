"""Extension points (pluggy hook specifications) and the plugin manager.

This module is the catalogue of hooks, like Dokku's plugin-triggers page: every hook below says
when it is called and what it may do. Built-in plugins live in the top-level `plugins/<name>/`
folder (imported as `paas_plugins.<name>`); third-party ones are pip packages with an entry point
in the group `paas.plugins`. Both are loaded the same way and mark their hooks with
`paas.plugins.hookimpl`. An implementation may take any subset of a hook's arguments. A folder
may hold several plugins, as a distribution may name several entry points: its module's
`PAAS_PLUGINS` maps each plugin's name to the object holding its hooks (the datastores folder
gives one per kind: postgres, redis); each is listed, and can be turned off, by its own name.
Built-in plugins are registered, and called, in the order of their names.

Errors: a pre-hook (`paas_pre_build`, `paas_pre_deploy`) that raises fails the operation with one
line naming the plugin, before anything changed; any other hook that raises is logged and
recorded as an event, and the operation goes on. Users never see a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from paas.errors import PaasError
from paas.store import App

if TYPE_CHECKING:
    import click
    import flask
    from dulwich.repo import Repo

    from paas.core.backup import RestoreSource
    from paas.core.container import ContainerSettings
    from paas.core.context import Context
    from paas.core.manifest import PushedSource
    from paas.core.output import BuildLog
    from paas.core.routes import RouteExtras
    from paas.store import Build, Release

PROJECT = "paas"
ENTRY_POINT_GROUP = "paas.plugins"
BUILTIN_PACKAGE = "paas_plugins"
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "plugins"
PLUGINS_ATTRIBUTE = "PAAS_PLUGINS"  # a built-in folder that holds several plugins names them

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
log = logging.getLogger("paas.plugins")


class HookSpecs:
    """The hooks; each docstring is its entry in the catalogue (README: Plugins)."""

    @hookspec
    def paas_commands(self) -> list[click.Command]:
        """At start: return click commands (`paas.commands.define` gives one its rule: a
        permission on the app it names, `user` for one naming no app, `admin` for admins only,
        `owned=True` for one on a thing of the actor's own, `app_optional=True` for one whose app
        may be left out, `dashboard=True` for one that may name the dashboard (`paas`), and
        `terminal=True` for one that attaches the user's terminal; the plugin calls
        `paas.commands.declare_permissions` on them when it is imported, so its rules are in
        the table only while it is loaded; a plain click command is admins' only), available
        over SSH and on the host CLI and listed by `help`; `click.echo`, `print` and prompts
        reach the session that ran it. A name already taken is refused at load."""

    @hookspec
    def paas_app_created(self, ctx: Context, app: App) -> None:
        """After an app was created (by `apps:create` or a first push)."""

    @hookspec
    def paas_app_destroyed(self, ctx: Context, app: App, log: BuildLog) -> None:
        """After an app and its records were removed: clean up the plugin's own state; `log`
        reaches whoever destroyed it (say what was kept)."""

    @hookspec
    def paas_app_destroying(self, ctx: Context, app: App, log: BuildLog) -> None:
        """Before an app is destroyed, while everything of it is still there (Dokku's
        `pre-delete`), under the app's lock: a review app's `pr-predestroy`, an app's own
        dependants. Errors are logged and the destroy goes on: an app can always be destroyed."""

    @hookspec
    def paas_receive_branch(
        self,
        ctx: Context,
        app: App,
        branch: str,
        old_sha: str | None,
        new_sha: str | None,
        repo: Repo,
        log: BuildLog,
    ) -> str | None:
        """A push to `app` of a branch that does not deploy it (not main or master): `new_sha`
        None deletes the branch, `old_sha` None creates it; the pack is in `repo` and the ref has
        not moved yet. Return a line for the pusher (the push took it: the ref moves), None to
        leave it to another plugin, or raise `PaasError` to reject the ref with that message.
        The first plugin to take it wins; when none does, the ref is refused with the deploy
        branch hint. `access` already let the pusher `git:push` to `app`."""

    @hookspec
    def paas_quota_held(self, ctx: Context, quota: str, user_id: int) -> int | None:
        """When a quota is checked or reported: how much of `quota` the user holds in what the
        plugin keeps (`services`: the backing services they own); None for a quota it keeps none
        of. The answers of every plugin are added up."""

    @hookspec
    def paas_linked_config_keys(self, ctx: Context, app: App) -> list[str]:
        """At need (a review app made from `app`): the config keys of `app` that hold what the
        plugin linked to it (a database's URL), and the keys its links set by default
        (`DATABASE_URL`) however they were set. A review app takes none of them from its parent:
        it gets its own (app.json addons)."""

    @hookspec
    def paas_app_renamed(self, ctx: Context, app: App, old_name: str) -> None:
        """After an app was renamed (`app` has the new name): move the plugin's own state."""

    @hookspec
    def paas_pre_build(self, ctx: Context, app: App, source: PushedSource, log: BuildLog) -> None:
        """Before a build: `source` holds the commit and its parsed app.json manifest. Raise
        `PaasError(message)` to refuse the push; the message reaches the pusher."""

    @hookspec
    def paas_post_build(self, ctx: Context, app: App, build: Build, log: BuildLog) -> None:
        """After a build succeeded, before its release is deployed."""

    @hookspec
    def paas_pre_deploy(self, ctx: Context, app: App, release: Release, container: ContainerSettings) -> None:
        """Before any container of a release starts (processes, release phase, postdeploy, `run`,
        cron): add to `container` (env, mounts, labels, limits, networks). Raise to fail the deploy;
        the running release keeps serving."""

    @hookspec
    def paas_post_deploy(self, ctx: Context, app: App, release: Release, log: BuildLog) -> None:
        """After traffic moved to a new release (a push, config change, scale or rollback)."""

    @hookspec
    def paas_deploy_started(self, ctx: Context, app: App, release: Release, log: BuildLog) -> None:
        """A new release (push, config change, rollback) starts deploying; nothing changed yet."""

    @hookspec
    def paas_deploy_failed(
        self, ctx: Context, app: App, release: Release | None, error: str, log: BuildLog
    ) -> None:
        """A deploy failed and the running release keeps serving: `release` is the one that did
        not come up (None: the build failed before there was one); `error` says why, in one line."""

    @hookspec
    def paas_rolled_back(
        self, ctx: Context, app: App, release: Release, target: Release, reason: str | None, log: BuildLog
    ) -> None:
        """After a rollback deployed: `release` is the new release made from `target`'s build and
        config; `reason` is None for a person's `releases:rollback`, else why it was automatic."""

    @hookspec
    def paas_process_trouble(self, ctx: Context, app: App, dyno: str, kind: str, detail: str) -> None:
        """A process of the current release is in trouble, seen by the server's reconcile pass:
        `kind` is "oom-killed" (past its memory limit) or "crash-loop" (restarting over and
        over); once per occurrence."""

    @hookspec
    def paas_backup_failed(self, ctx: Context, service: str, error: str) -> None:
        """A scheduled backup of a backing service (`service` as `postgres:db`) failed."""

    @hookspec
    def paas_node_down(self, ctx: Context, node: str, detail: str) -> None:
        """A swarm node that was ready is down (seen by the server's reconcile pass; once per fall)."""

    @hookspec
    def paas_certificate_expiring(
        self, ctx: Context, app: App | None, hostnames: list[str], not_after: str, days: int
    ) -> None:
        """A certificate the router serves ends within 14 days (`app` None: the dashboard's);
        called at most once a day per certificate while it does."""

    @hookspec
    def paas_server_started(self, ctx: Context, stop: threading.Event) -> None:
        """`paas server` is ready: start the plugin's own threads (daemon threads that end when
        `stop` is set). Called once per server process; return at once."""

    @hookspec
    def paas_config_changed(self, ctx: Context, app: App, keys: list[str]) -> None:
        """After `config:set`/`config:unset` made a release; `keys` are the names that changed."""

    @hookspec
    def paas_nginx_app(self, ctx: Context, app: App, extras: RouteExtras) -> None:
        """While rendering the app's server block: add directives or locations to `extras`
        (each is validated before it reaches nginx; a location `/` replaces the proxy).
        `extras.set_tls(RouteTls(...))` adds an HTTPS server block for the names the certificate
        covers (one plugin does: certs); `extras.set_acme_root(folder)` answers HTTP-01."""

    @hookspec
    def paas_nginx_dashboard(self, ctx: Context, extras: RouteExtras) -> None:
        """While rendering the dashboard's server block (`paas.<domain>`): only `extras.tls` (serve
        it over HTTPS with that certificate) and `extras.acme_root` (answer HTTP-01) are used."""

    @hookspec
    def paas_web_blueprints(self) -> list[flask.Blueprint]:
        """When the dashboard starts: Flask blueprints (pages behind the same login, templates a
        page may include, e.g. `_service_links.html` on the app page); one name registers once."""

    @hookspec
    def paas_reconcile(self, ctx: Context, apps: list[App]) -> None:
        """On each reconcile pass (every PAAS_RECONCILE_SECONDS in `paas server`): converge the
        plugin's own containers or schedules. `apps`: every app as the pass read them at its
        start, for a plugin that only needs to know which exist (a long pass, one that starts
        processes, may be minutes old: one that acts on an app's state reads it again, as cron
        does). Keep it quick; errors are logged."""

    @hookspec
    def paas_schedulers(self) -> dict[str, Callable[[Context, App | None], Any]]:
        """At need: more schedulers by name (`scheduler:set <app> <name>`), each a factory given
        the context and the app (None: any) returning an object with the methods of
        `paas.scheduler.interface.Scheduler` (plugins/swarm gives `swarm`). docker-local stays the core's."""

    @hookspec
    def paas_app_json_keys(self) -> list[str]:
        """At push: the top-level app.json keys the plugin reads itself (from `Manifest.data`,
        checked in its `paas_pre_build`), which the build log then does not call ignored."""

    @hookspec
    def paas_backup_paths(self, ctx: Context) -> list[Path]:
        """While `backup:create` runs: files and folders under the data dir holding the plugin's
        state beyond its own folder (`plugins_dir/<name>`, always in a backup), e.g. the storage
        folders. They are read as they are; a database belongs in `paas_backup_dump`."""

    @hookspec
    def paas_backup_dump(self, ctx: Context, folder: Path, log: BuildLog) -> None:
        """While `backup:create` runs, before any file is read: write a consistent dump of state
        kept outside the data dir (a database in a container) into `folder` (the plugin's own,
        empty; checksummed and encrypted with the rest). Raise to fail the backup."""

    @hookspec
    def paas_backup_restore(self, ctx: Context, source: RestoreSource, log: BuildLog) -> str | None:
        """During `backup:restore`, after the store and the files are back and before the apps are
        rebuilt: load the plugin's dumps (`source.dumps / <plugin name>`) and mend state that
        names the old data dir (`source.relocate`). With `source.apps` (`--app`), only what
        belongs to those apps, and their files are not copied for you (take them from
        `source.root`). Return a line saying what came back; raise to report the plugin's part as
        failed: the restore goes on and says what came back."""


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str
    source: str  # "built-in" or the distribution that provides it
    hooks: list[str]


class PluginError(PaasError):
    """A plugin refused or failed an operation; the message names the plugin."""


class Plugins:
    """The loaded plugins of this process, and the calls into them."""

    def __init__(self, disabled: set[str] | None = None, builtin_dir: Path = BUILTIN_DIR) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(HookSpecs)
        self.info: dict[str, PluginInfo] = {}
        self.disabled = set(disabled or ())
        self._load_builtin(builtin_dir)
        self._load_entry_points()

    # loading
    def _load_builtin(self, folder: Path) -> None:
        if not folder.is_dir():
            return
        package = sys.modules.get(BUILTIN_PACKAGE)
        if package is None:  # the folder is a package without being installed as one
            package = types.ModuleType(BUILTIN_PACKAGE)
            package.__path__ = []
            sys.modules[BUILTIN_PACKAGE] = package
        if str(folder) not in package.__path__:
            package.__path__.append(str(folder))
        found: list[tuple[str, object]] = []
        for path in sorted(folder.iterdir()):
            name = path.name
            if not (path / "__init__.py").is_file() or name.startswith(("_", ".")) or name in self.disabled:
                continue
            try:
                module = importlib.import_module(f"{BUILTIN_PACKAGE}.{name}")
            except Exception as exc:  # ours: a broken install, better refused than half-working
                raise PluginError(
                    f"built-in plugin {name} failed to load ({exc.__class__.__name__}: {exc}); "
                    "reinstall (make up) or turn it off with PAAS_DISABLED_PLUGINS"
                ) from exc
            named = getattr(module, PLUGINS_ATTRIBUTE, None)
            if isinstance(named, dict):  # one folder, several plugins (the datastores' kinds)
                found.extend((n, p) for n, p in named.items() if n not in self.disabled)
            else:
                found.append((name, module))
        for name, plugin in sorted(found, key=lambda item: item[0]):
            self._register(plugin, name, getattr(plugin, "__version__", "built-in"), "built-in")

    def _load_entry_points(self) -> None:
        for dist in metadata.distributions():
            for ep in dist.entry_points:
                if ep.group != ENTRY_POINT_GROUP or ep.name in self.disabled:
                    continue
                try:
                    plugin = ep.load()
                except Exception as exc:  # a broken third-party plugin must not stop the server
                    log.error("plugin %s (%s) failed to load: %s", ep.name, dist.metadata["Name"], exc)
                    continue
                self._register(plugin, ep.name, dist.version, dist.metadata["Name"])

    def _register(self, plugin: object, name: str, version: str, source: str) -> None:
        if name in self.info:
            taken = self.info[name].source
            log.error("plugin %s from %s ignored: the name is taken by %s", name, source, taken)
            return
        self.pm.register(plugin, name=name)
        hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])
        self.info[name] = PluginInfo(name, version, source, hooks)

    # calling
    def _impls(self, hook: str) -> list[tuple[str, Callable, list[str]]]:
        """(plugin name, function, argument names) in pluggy's call order (last registered first)."""
        caller = getattr(self.pm.hook, hook)
        return [
            (self.pm.get_name(i.plugin) or "?", i.function, list(i.argnames))
            for i in reversed(caller.get_hookimpls())
        ]

    def call_pre(self, hook: str, **kwargs: Any) -> list[Any]:
        """A hook that may refuse: the first error stops the operation, naming the plugin."""
        results = []
        for name, fn, argnames in self._impls(hook):
            try:
                results.append(fn(**{a: kwargs[a] for a in argnames}))
            except PaasError as exc:
                raise PluginError(f"{name}: {exc}") from exc
            except Exception as exc:
                log.exception("plugin %s failed in %s", name, hook)
                raise PluginError(f"plugin {name} failed in {hook}: {exc.__class__.__name__}") from exc
        return results

    def call_first(self, hook: str, **kwargs: Any) -> Any:
        """A hook one plugin answers: the first result that is not None (None: nobody took it).
        Its `PaasError` is the operation's own (a refusal, a failed build) and passes unchanged;
        anything else fails it with one line naming the plugin."""
        for name, fn, argnames in self._impls(hook):
            try:
                result = fn(**{a: kwargs[a] for a in argnames})
            except PaasError:
                raise
            except Exception as exc:
                log.exception("plugin %s failed in %s", name, hook)
                raise PluginError(f"plugin {name} failed in {hook}: {exc.__class__.__name__}") from exc
            if result is not None:
                return result
        return None

    def call_post(self, hook: str, **kwargs: Any) -> None:
        """A hook after the fact: errors are logged and recorded as events (on the `app` passed,
        if any), and the other plugins still run."""
        ctx = kwargs.get("ctx")
        app = kwargs.get("app")
        app = app if isinstance(app, App) else getattr(app, "name", None)  # the App: its id, not its name
        for name, fn, argnames in self._impls(hook):
            try:
                fn(**{a: kwargs[a] for a in argnames})
            except Exception as exc:
                log.exception("plugin %s failed in %s", name, hook)
                if ctx is not None:
                    try:
                        ctx.store.add_event(app, "paas", "plugin:failed", f"{name} {hook}: {exc}"[:300])
                    except Exception:  # the store itself failing is logged above already
                        pass

    def commands(self) -> list[click.Command]:
        out = []
        for name, fn, _ in self._impls("paas_commands"):
            try:
                out.extend(fn() or [])
            except Exception:
                log.exception("plugin %s failed in paas_commands", name)
        return out

    def blueprints(self) -> list[flask.Blueprint]:
        out = []
        for name, fn, _ in self._impls("paas_web_blueprints"):
            try:
                out.extend(fn() or [])
            except Exception:
                log.exception("plugin %s failed in paas_web_blueprints", name)
        return out

    def schedulers(self) -> dict[str, Callable]:
        """Scheduler factories by name from `paas_schedulers` (the first plugin to name one wins)."""
        out: dict[str, Callable] = {}
        for name, fn, _ in self._impls("paas_schedulers"):
            try:
                for key, factory in (fn() or {}).items():
                    out.setdefault(key, factory)
            except Exception:
                log.exception("plugin %s failed in paas_schedulers", name)
        return out

    def app_json_keys(self) -> set[str]:
        """The app.json keys plugins read (`paas_app_json_keys`)."""
        out: set[str] = set()
        for name, fn, _ in self._impls("paas_app_json_keys"):
            try:
                out.update(str(k) for k in fn() or [])
            except Exception:
                log.exception("plugin %s failed in paas_app_json_keys", name)
        return out

    def each(self, hook: str) -> list[tuple[str, Callable[..., Any]]]:
        """(plugin name, a call taking the hook's keyword arguments) per implementation, for a
        caller that gives each plugin its own arguments and reports each one's outcome."""

        def bind(fn: Callable, argnames: list[str]) -> Callable[..., Any]:
            return lambda **kwargs: fn(**{a: kwargs[a] for a in argnames})

        return [(name, bind(fn, argnames)) for name, fn, argnames in self._impls(hook)]

    def has(self, hook: str) -> bool:
        return bool(getattr(self.pm.hook, hook).get_hookimpls())


_loaded: dict[frozenset[str], Plugins] = {}
_loading = threading.Lock()  # a warm pack process loads them in a thread while its push may start


def plugins(disabled: set[str]) -> Plugins:
    """The process's plugins, loaded once (a server restart picks up newly installed ones)."""
    key = frozenset(disabled)
    with _loading:
        if key not in _loaded:
            _loaded[key] = Plugins(set(key))
        return _loaded[key]
