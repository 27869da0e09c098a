"""What a plugin may use of the core, built-in or third-party: the calls that declare its hooks,
commands and rules, the checks its service code makes, and the types its hooks are given.

Each name is defined in the module that owns it; this module says which of them are a
plugin's to rely on, so a change to one of them is known to be a change for every plugin. It is
the contract, not a way around the layers: a plugin that needs more of the core than this (a
route to re-render, an app's processes) imports that module itself, where the reach is seen, and
such a need is a candidate for a hook. The README's plugin section documents these names.
"""

from __future__ import annotations

from paas.commands import FORMAT_OPTION, CommandEnv, declare_permissions, define
from paas.core import nft
from paas.core.backup import RestoreSource
from paas.core.container import ContainerSettings
from paas.core.context import Context
from paas.core.manifest import PushedSource
from paas.core.output import BuildLog
from paas.core.plugin_db import PluginDatabase
from paas.core.routes import RouteExtras, RouteTls
from paas.errors import Conflict, NotFound, PaasError, PermissionDenied
from paas.plugins import hookimpl
from paas.services import access
from paas.services.locks import app_lock
from paas.settings import Settings
from paas.store import App, Release

__all__ = [
    # hooks and commands (paas.plugins, paas.commands)
    "hookimpl",
    "define",
    "declare_permissions",
    "CommandEnv",
    "FORMAT_OPTION",
    # rules: access.authorize, require_admin, require_owner, owns, declare, declare_entries, ...
    "access",
    "app_lock",  # the app's lock, held while its state changes (as every service does)
    # what goes wrong, in words a user reads
    "PaasError",
    "NotFound",
    "Conflict",
    "PermissionDenied",
    # what hooks are given
    "Context",
    "Settings",
    "App",
    "Release",
    "BuildLog",
    "PushedSource",
    "ContainerSettings",
    "RouteExtras",
    "RouteTls",
    "RestoreSource",
    # a plugin's own state (a SQLite file in its folder)
    "PluginDatabase",
    # firewall rules in an nftables table of the plugin's own (see paas/core/nft.py)
    "nft",
]
