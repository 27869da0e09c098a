"""SSH public keys: who may push and run commands. The first key added is an admin."""

from __future__ import annotations

import base64
import hashlib

import paramiko

from paas.core import validation
from paas.core.context import Context
from paas.errors import Conflict, NotFound, PaasError, PermissionDenied
from paas.store import SshKey


def fingerprint_of_blob(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint, as `ssh-keygen -lf` prints it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def parse_public_key(text: str) -> tuple[str, str]:
    """Validate an OpenSSH public key line; return (normalised 'type base64', fingerprint)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) != 1:
        raise PaasError("expected exactly one public key line (e.g. the contents of id_ed25519.pub)")
    parts = lines[0].split()
    if len(parts) < 2:
        raise PaasError("not an OpenSSH public key: expected '<type> <base64> [comment]'")
    key_type, data = parts[0], parts[1]
    try:
        blob = base64.b64decode(data, validate=True)
        paramiko.PKey.from_type_string(key_type, blob)
    except Exception:
        raise PaasError(f"not a valid {key_type!r} public key") from None
    return f"{key_type} {data}", fingerprint_of_blob(blob)


def _require_host(ctx: Context, what: str) -> None:
    """Who may log in is decided on the server itself (for now), never by a key holder."""
    if not ctx.on_host:
        raise PermissionDenied(f"{what} works on the server only (paas {what} ...)")


def add_key(ctx: Context, name: str, public_key_text: str) -> SshKey:
    _require_host(ctx, "ssh-keys:add")
    validation.key_name(name)
    normalised, fp = parse_public_key(public_key_text)
    if ctx.store.get_key(name):
        raise Conflict(f"a key named {name!r} already exists")
    existing = ctx.store.get_key_by_fingerprint(fp)
    if existing:
        raise Conflict(f"this key is already registered as {existing.name!r}")
    is_admin = ctx.store.count_keys() == 0
    key = ctx.store.add_key(name, fp, normalised, is_admin)
    ctx.store.add_event(None, ctx.actor, "ssh-keys:add", f"{name} {fp}")
    return key


def list_keys(ctx: Context) -> list[SshKey]:
    return ctx.store.list_keys()


def remove_key(ctx: Context, name: str) -> None:
    _require_host(ctx, "ssh-keys:remove")
    validation.key_name(name)
    if not ctx.store.remove_key(name):
        raise NotFound(f"no key named {name!r}")
    ctx.store.add_event(None, ctx.actor, "ssh-keys:remove", name)


def authenticate(ctx: Context, blob: bytes) -> SshKey | None:
    """The key record matching an offered public key blob, or None."""
    return ctx.store.get_key_by_fingerprint(fingerprint_of_blob(blob))
