"""The settings every container of a release starts with, in one place.

Config vars of the release, then whatever plugins add through `paas_pre_deploy` (mounts, env,
labels, limits, networks). Processes, the release phase, postdeploy, `run` and cron all start
from these, so a mount or a limit reaches every kind of container alike.
"""

from __future__ import annotations

from paas.core.container import ContainerSettings
from paas.core.context import Context
from paas.store import App, Release


def container_settings(ctx: Context, app: App, release: Release) -> ContainerSettings:
    """Raises PluginError (naming the plugin) when a plugin refuses: nothing was started yet."""
    settings = ContainerSettings(env=dict(release.config))
    ctx.plugins.call_pre("paas_pre_deploy", ctx=ctx, app=app, release=release, container=settings)
    return settings
