"""The settings every container of a release starts with, in one place.

Config vars of the release, the app's own network, its resource limits (server defaults, then
`resource:limit`), then whatever plugins add through `paas_pre_deploy` (mounts, env, labels,
limits, networks). Processes, the release phase, postdeploy, `run` and cron all start from
these, so a mount or a limit reaches every kind of container alike. The hardening that never
varies (no capabilities, no-new-privileges, an unprivileged user) is added by the scheduler.
"""

from __future__ import annotations

from paas.core import names, networks
from paas.core.container import ContainerSettings
from paas.core.context import Context
from paas.services import limits, schedulers
from paas.store import App, Release


def network_name(ctx: Context, app: App) -> str:
    """The app's own network, of its scheduler's `network_driver`: a bridge on this host, or an
    attachable overlay (swarm: its services span the nodes; its one-offs and linked backing
    services join it on this host)."""
    return _named(ctx, app, schedulers.for_app(ctx, app).network_driver)


def _named(ctx: Context, app: App, driver: str) -> str:
    if driver == "overlay":
        return names.app_overlay(ctx.settings.instance_id, app.name)
    return names.app_network(ctx.settings.instance_id, app.name)


def app_network(ctx: Context, app: App) -> str:
    """`network_name`, created on first use."""
    s = ctx.settings
    driver = schedulers.for_app(ctx, app).network_driver  # once: a plugin's scheduler costs reads
    return networks.ensure(
        ctx.docker,
        _named(ctx, app, driver),
        s.instance_id,
        app.name,
        s.network_pool,
        s.engine_locks_dir / "networks.lock",  # the engine's subnets: shared by every instance on it
        driver=driver,
    )


def container_settings(ctx: Context, app: App, release: Release) -> ContainerSettings:
    """Raises PluginError (naming the plugin) when a plugin refuses: nothing was started yet."""
    base, per_type = limits.effective(ctx, app)
    settings = ContainerSettings(
        env=dict(release.config), networks=[app_network(ctx, app)], limits=base, type_limits=per_type
    )
    ctx.plugins.call_pre("paas_pre_deploy", ctx=ctx, app=app, release=release, container=settings)
    return settings
