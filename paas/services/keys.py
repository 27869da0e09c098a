"""SSH public keys: each belongs to a user, who pushes and runs commands with it. The first user is
an admin; what the others may do is in `access`."""

from __future__ import annotations

import base64
import hashlib

import paramiko

from paas.core import validation
from paas.core.context import Context
from paas.errors import Conflict, NotFound, PaasError
from paas.services import access
from paas.store import SshKey, now


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


def _key_name(ctx: Context, user: str) -> str:
    """A user's first key is named after them, the next ones `<user>-2`, `<user>-3`, ..."""
    if ctx.store.get_key(user) is None:
        return user
    n = 2
    while ctx.store.get_key(f"{user}-{n}") is not None:
        n += 1
    return validation.key_name(f"{user}-{n}")


def add_key(ctx: Context, user: str, public_key_text: str) -> SshKey:
    """Attach a key to a user, creating the user (without a password) if needed; the first user,
    or the first while there is no admin, is an admin."""
    access.require_admin(ctx, "ssh-keys:add")  # root on the server, or an admin's Users page
    validation.user_name(user)
    normalised, fp = parse_public_key(public_key_text)
    existing = ctx.store.get_key_by_fingerprint(fp)
    if existing:
        raise Conflict(f"this key is already registered as {existing.name!r}")
    record = ctx.store.get_user(user)
    if record is None:
        user_id = ctx.store.add_key_user(user, ctx.store.count_admins() == 0, now())
        record = ctx.store.get_user_by_id(user_id)
        ctx.store.add_event(None, ctx.actor, "users:add", user + (" (admin)" if record.is_admin else ""))  # type: ignore[union-attr]
    assert record is not None
    name = _key_name(ctx, user)
    key = ctx.store.add_key(name, fp, normalised, record.is_admin, record.id)
    ctx.store.add_event(None, ctx.actor, "ssh-keys:add", f"{name} for {user} {fp}")
    return key


def list_keys(ctx: Context) -> list[SshKey]:
    """Admins see every key; anyone else only their own (who else is here is not theirs to know)."""
    every = ctx.store.list_keys()
    return [k for k in every if access.owns(ctx, k.user_id)]


def remove_key(ctx: Context, name: str) -> None:
    access.require_admin(ctx, "ssh-keys:remove")
    validation.key_name(name)
    if not ctx.store.remove_key(name):  # open sessions of the key end (the SSH server watches)
        raise NotFound(f"no key named {name!r}")
    ctx.store.add_event(None, ctx.actor, "ssh-keys:remove", name)


def authenticate(ctx: Context, blob: bytes) -> SshKey | None:
    """The key record matching an offered public key blob, or None."""
    return ctx.store.get_key_by_fingerprint(fingerprint_of_blob(blob))


def session_context(ctx: Context, fingerprint: str) -> Context | None:
    """A context acting as the key's user, read fresh from the store (None: the key or its user is
    gone). Each SSH command gets its own, so a change of access counts from the next command."""
    user = ctx.store.user_of_key(fingerprint)
    if user is None:
        return None
    return ctx.for_actor(user.name, user.is_admin, user_id=user.id)
