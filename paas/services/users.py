"""Dashboard and API accounts: users, argon2id passwords, API tokens, web sessions, login throttling.

Everything lives in the store, so every gunicorn worker (and the host CLI) sees the same sessions,
tokens and failed-login counts. Tokens and session ids are random and long: the store keeps only
their SHA-256, which is enough for secrets that cannot be guessed (argon2 is for passwords).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from paas.core import validation
from paas.core.context import Context
from paas.errors import Conflict, NotFound, PaasError, Throttled, Unauthenticated
from paas.services import access
from paas.store import ApiToken, User, now

PASSWORD_MIN = 8
PASSWORD_MAX = 1024
MAX_FAILURES = 5  # failed logins for one name from one address ...
FAILURE_WINDOW = 15 * 60  # ... within this many seconds lock that pair until they age out
SESSION_MAX_AGE = 7 * 24 * 3600
SESSION_IDLE = 24 * 3600
TOUCH_EVERY = 60  # seconds between "last seen" writes, so reads stay reads
TOKEN_PREFIX = "paas_"
MAX_ADDRESS_FAILURES = 30  # failed logins from one address, whatever the names (spraying) ...
MAX_TOKEN_FAILURES = 20  # bad API tokens from one address within FAILURE_WINDOW lock its API use
TOKEN_KEY = "<token>"  # their name in the failure counts (no user name has a '<')
BAD_LOGIN = "invalid user name or password"
MAX_HASHING = 2  # concurrent password checks per process: each argon2 hash takes 64 MiB
HASH_WAIT = 5.0  # seconds a login waits for a free slot before being told to retry

_hasher = PasswordHasher()
_hashing = threading.BoundedSemaphore(MAX_HASHING)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Unknown users cost the same argon2 work as known ones: no timing oracle for names."""
    return _hasher.hash(secrets.token_hex(16))


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_password(password: str) -> str:
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise PaasError(f"a password needs {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    if "\x00" in password or "\n" in password or "\r" in password:
        raise PaasError("a password cannot contain NUL bytes or line breaks")
    return password


# users
def add_user(ctx: Context, name: str, password: str | None, admin: bool = False) -> User:
    """A new user; without a password (None) they cannot log in to the dashboard, only use the
    SSH keys and API tokens they are given."""
    access.require_admin(ctx, "users:add")
    validation.user_name(name)
    if password is not None:
        _check_password(password)
    if ctx.store.get_user(name):
        raise Conflict(f"a user named {name!r} already exists")
    try:
        user = ctx.store.add_user(name, _hasher.hash(password) if password else "", admin, now())
    except sqlite3.IntegrityError:
        raise Conflict(f"a user named {name!r} already exists") from None
    ctx.store.add_event(None, ctx.actor, "users:add", name + (" (admin)" if admin else ""))
    return user


def list_users(ctx: Context) -> list[User]:
    access.require_admin(ctx, "users:list")
    return ctx.store.list_users()


@dataclass(frozen=True)
class Account:
    """One row of the admins' Users page."""

    name: str
    is_admin: bool
    has_password: bool
    keys: int
    tokens: int
    created_at: str


def list_accounts(ctx: Context) -> list[Account]:
    """Every user with how they can get in: a password, how many SSH keys and API tokens."""
    access.require_admin(ctx, "users:list")
    keys = Counter(k.user_id for k in ctx.store.list_keys())
    tokens = Counter(t.user_id for t in ctx.store.list_tokens())
    return [
        Account(u.name, u.is_admin, bool(u.password_hash), keys[u.id], tokens[u.id], u.created_at)
        for u in ctx.store.list_users()
    ]


def _keeps_an_admin(ctx: Context, user: User) -> None:
    """Nobody locked out: the last admin stays one (root on the host can always make another)."""
    if user.is_admin and ctx.store.count_admins() <= 1:
        raise PaasError(f"{user.name} is the only admin: make someone else an admin first")


def set_admin(ctx: Context, name: str, admin: bool) -> User:
    """Make a user an admin (every permission on every app) or take that away; at once, for
    their open sessions, tokens and SSH keys too (each request reads the user afresh)."""
    access.require_admin(ctx, "users:admin")
    user = access.user_named(ctx, name)
    if user.is_admin == admin:
        raise PaasError(f"{user.name} {'is already' if admin else 'is not'} an admin")
    if not admin:
        _keeps_an_admin(ctx, user)
    ctx.store.set_admin(user.id, admin)
    ctx.store.add_event(None, ctx.actor, "users:admin", f"{name} {'on' if admin else 'off'}")
    return ctx.store.get_user_by_id(user.id)  # type: ignore[return-value]


def remove_user(ctx: Context, name: str) -> None:
    """The user goes with their keys, sessions and tokens; apps they owned are left to admins."""
    access.require_admin(ctx, "users:remove")
    user = access.user_named(ctx, name)
    _keeps_an_admin(ctx, user)
    ctx.store.remove_user(user.id)  # sessions and tokens go with it (ON DELETE CASCADE)
    ctx.store.add_event(None, ctx.actor, "users:remove", name)


def set_password(ctx: Context, name: str, password: str) -> None:
    """A new password also ends every session of the user."""
    access.require_admin(ctx, "users:passwd")
    user = access.user_named(ctx, name)
    ctx.store.set_password_hash(user.id, _hasher.hash(_check_password(password)))
    ctx.store.remove_user_sessions(user.id)
    ctx.store.add_event(None, ctx.actor, "users:passwd", name)


# logins
def throttle_state(ctx: Context, name: str, ip: str, at: float | None = None) -> int:
    """Seconds until this name may try again from this address (0: not locked): MAX_FAILURES for
    the pair, or MAX_ADDRESS_FAILURES from the address across all names, within FAILURE_WINDOW."""
    at = time.time() if at is None else at
    since = at - FAILURE_WINDOW
    waits = [0.0]
    failures = ctx.store.login_failures(name[:64], ip[:64], since)
    if len(failures) >= MAX_FAILURES:
        waits.append(failures[MAX_FAILURES - 1] + FAILURE_WINDOW - at)
    spread = ctx.store.address_login_failures(ip[:64], since, MAX_ADDRESS_FAILURES, TOKEN_KEY)
    if len(spread) >= MAX_ADDRESS_FAILURES:
        waits.append(spread[MAX_ADDRESS_FAILURES - 1] + FAILURE_WINDOW - at)
    wait = max(waits)
    return max(1, int(wait + 0.999)) if wait > 0 else 0


def _verify(password_hash: str, password: str) -> bool:
    """argon2 verify, at most MAX_HASHING at once in this process: a flood of logins queues
    briefly, then is told to retry, instead of taking 64 MiB and a core each."""
    if not _hashing.acquire(timeout=HASH_WAIT):
        raise Throttled("too many logins at once; try again in a few seconds", retry_after=5)
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    finally:
        _hashing.release()


def login(ctx: Context, name: str, password: str, ip: str, at: float | None = None) -> User:
    """Check a password. MAX_FAILURES failures for one name from one address (or
    MAX_ADDRESS_FAILURES from one address) within FAILURE_WINDOW lock it out, the right password
    included, until they age out. A name that could not be a user's is never stored or hashed:
    it counts against the address only, under the empty name."""
    at = time.time() if at is None else at
    ip = (ip or "?")[:64]
    valid = validation.login_name(name)
    key = valid or ""
    wait = throttle_state(ctx, key, ip, at)
    if wait:
        minutes = (wait + 59) // 60
        raise Throttled(f"too many failed logins; try again in {minutes} minute(s)", retry_after=wait)
    user = ctx.store.get_user(valid) if valid else None
    ok = valid is not None and _verify(user.password_hash if user else _dummy_hash(), password or "")
    if not ok or user is None:
        ctx.store.add_login_failure(key, ip, at)
        ctx.store.prune_login_failures(at - FAILURE_WINDOW)
        if valid and throttle_state(ctx, key, ip, at):
            ctx.store.add_event(None, valid, "login:locked", f"failures from {ip}")
        raise Unauthenticated(BAD_LOGIN) from None
    ctx.store.clear_login_failures(user.name, ip)
    if _hasher.check_needs_rehash(user.password_hash):
        ctx.store.set_password_hash(user.id, _hasher.hash(password))
    ctx.store.add_event(None, user.name, "login", f"from {ip}")
    return user


# web sessions
def start_session(ctx: Context, user: User, at: float | None = None) -> str:
    """A new random session id for the cookie; the store keeps its hash."""
    at = time.time() if at is None else at
    sid = secrets.token_urlsafe(32)
    ctx.store.prune_sessions(at - SESSION_MAX_AGE, at - SESSION_IDLE)
    ctx.store.add_session(_sha256(sid), user.id, at)
    return sid


def session_user(ctx: Context, sid: str | None, at: float | None = None) -> User | None:
    if not sid or not isinstance(sid, str) or len(sid) > 128:
        return None
    at = time.time() if at is None else at
    found = ctx.store.session_user(_sha256(sid))
    if found is None:
        return None
    user, created, seen = found
    if at - created > SESSION_MAX_AGE or at - seen > SESSION_IDLE:
        ctx.store.remove_session(_sha256(sid))
        return None
    if at - seen > TOUCH_EVERY:
        ctx.store.touch_session(_sha256(sid), at)
    return user


def still_signed_in(ctx: Context, kind: str, secret: str | None, user: User) -> bool:
    """Whether something opened with this session (`kind` "session") or API token ("token") may go
    on: it still names the same user, who was not demoted. Logging out, a new password, a
    revoked token, removing the user or taking admin away end a live stream within seconds."""
    found = session_user(ctx, secret) if kind == "session" else token_user(ctx, secret)
    return found is not None and found.id == user.id and (found.is_admin or not user.is_admin)


def end_session(ctx: Context, sid: str | None) -> None:
    if sid and isinstance(sid, str):
        ctx.store.remove_session(_sha256(sid))


# flash messages: kept in the store for the session's next page, never in its cookie
FLASH_MAX = 32 * 1024  # characters of one message (a failed deploy's tail is ~15 lines)
FLASHES_KEPT = 10


def add_flash(ctx: Context, sid: str | None, category: str, message: str, at: float | None = None) -> None:
    if not sid or not isinstance(sid, str):
        return
    head, nl, rest = message.partition("\n")  # the outcome, then the end of the output
    text = head[:1000] + nl + (rest if len(rest) <= FLASH_MAX else "…" + rest[-FLASH_MAX:])
    ctx.store.add_flash(_sha256(sid), category, text, time.time() if at is None else at, FLASHES_KEPT)


def take_flashes(ctx: Context, sid: str | None) -> list[tuple[str, str]]:
    if not sid or not isinstance(sid, str):
        return []
    return ctx.store.take_flashes(_sha256(sid))


# API tokens
def create_token(ctx: Context, user_name: str, description: str = "") -> tuple[int, str]:
    """A new bearer token for a user: returned once, stored only as a hash."""
    access.require_admin(ctx, "tokens:create")
    user = access.user_named(ctx, user_name)
    if len(description) > 200 or any(ord(c) < 32 for c in description):
        raise PaasError("a token description is one line of at most 200 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = ctx.store.add_token(user.id, _sha256(token), description, now())
    ctx.store.add_event(None, ctx.actor, "tokens:create", f"{token_id} for {user.name}")
    return token_id, token


def token_user(
    ctx: Context, token: str | None, ip: str | None = None, at: float | None = None
) -> User | None:
    """The token's user, or None. With `ip`, bad tokens count against that address:
    MAX_TOKEN_FAILURES within FAILURE_WINDOW and it gets Throttled (valid tokens too) until
    they age out."""
    at = time.time() if at is None else at
    if ip is not None:
        failures = ctx.store.login_failures(TOKEN_KEY, ip[:64], at - FAILURE_WINDOW)
        if len(failures) >= MAX_TOKEN_FAILURES:
            wait = max(1, int(failures[MAX_TOKEN_FAILURES - 1] + FAILURE_WINDOW - at + 0.999))
            raise Throttled(f"too many invalid API tokens from {ip}; try again later", retry_after=wait)
    found = None
    if token and token.startswith(TOKEN_PREFIX) and len(token) <= 128:
        found = ctx.store.user_by_token_hash(_sha256(token))
    if found is None:
        if ip is not None and token:
            ctx.store.add_login_failure(TOKEN_KEY, ip[:64], at)
            ctx.store.prune_login_failures(at - FAILURE_WINDOW)
        return None
    user, token_id, used = found
    stamp = now()
    if used is None or _age(used, stamp) > TOUCH_EVERY:
        ctx.store.touch_token(token_id, stamp)
    return user


def _age(earlier: str, later: str) -> float:
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    a = datetime.strptime(earlier, fmt).replace(tzinfo=UTC)
    b = datetime.strptime(later, fmt).replace(tzinfo=UTC)
    return (b - a).total_seconds()


def list_tokens(ctx: Context) -> list[ApiToken]:
    access.require_admin(ctx, "tokens:list")
    return ctx.store.list_tokens()


def revoke_token(ctx: Context, token_id: str | int) -> None:
    access.require_admin(ctx, "tokens:revoke")
    try:
        number = int(token_id)
    except (TypeError, ValueError):
        raise PaasError(f"invalid token id {token_id!r}: use the number tokens:list shows") from None
    if not ctx.store.remove_token(number):
        raise NotFound(f"no token {number}")
    ctx.store.add_event(None, ctx.actor, "tokens:revoke", str(number))
