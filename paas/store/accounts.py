"""Dashboard and API accounts in the store: users, token hashes, sessions, failed logins.

Plain data only; the rules (hashing, throttling, lifetimes) are in `paas.services.users`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from paas.store.db import fresh_id

if TYPE_CHECKING:
    import sqlite3
    from contextlib import AbstractContextManager


@dataclass(frozen=True)
class User:
    id: int
    name: str
    password_hash: str
    is_admin: bool
    created_at: str


@dataclass(frozen=True)
class ApiToken:
    id: int
    user_id: int
    user: str
    description: str
    created_at: str
    last_used_at: str | None


class AccountsStore:
    """Mixed into `Store`; uses its connection helpers."""

    if TYPE_CHECKING:

        def _one(self, sql: str, args: tuple = ()) -> sqlite3.Row | None: ...
        def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]: ...
        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    # users
    @staticmethod
    def _user(row: sqlite3.Row | None) -> User | None:
        if row is None:
            return None
        d = dict(row)
        d["is_admin"] = bool(d["is_admin"])
        return User(**d)

    def add_user(self, name: str, password_hash: str, is_admin: bool, created_at: str) -> User:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO users (id, name, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?, ?)",
                (fresh_id(c, "users"), name, password_hash, int(is_admin), created_at),
            )
        return self.get_user(name)  # type: ignore[return-value]

    def get_user(self, name: str) -> User | None:
        return self._user(self._one("SELECT * FROM users WHERE name = ?", (name,)))

    def get_user_by_id(self, user_id: int) -> User | None:
        return self._user(self._one("SELECT * FROM users WHERE id = ?", (user_id,)))

    def list_users(self) -> list[User]:
        return [self._user(r) for r in self._all("SELECT * FROM users ORDER BY name")]  # type: ignore[misc]

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))

    def set_admin(self, user_id: int, is_admin: bool) -> None:
        """The user's flag, and their keys' copy of it (kept from before users had keys)."""
        with self.transaction() as c:
            c.execute("UPDATE users SET is_admin = ? WHERE id = ?", (int(is_admin), user_id))
            c.execute("UPDATE ssh_keys SET is_admin = ? WHERE user_id = ?", (int(is_admin), user_id))

    def remove_user(self, user_id: int) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM users WHERE id = ?", (user_id,))

    # API tokens
    def add_token(self, user_id: int, token_hash: str, description: str, created_at: str) -> int:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO api_tokens (user_id, token_hash, description, created_at) VALUES (?, ?, ?, ?)",
                (user_id, token_hash, description, created_at),
            )
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def user_by_token_hash(self, token_hash: str) -> tuple[User, int, str | None] | None:
        """The token's user, the token's id and when it was last used."""
        row = self._one(
            "SELECT users.*, api_tokens.id AS token_id, api_tokens.last_used_at AS token_used"
            " FROM api_tokens JOIN users ON users.id = api_tokens.user_id WHERE token_hash = ?",
            (token_hash,),
        )
        if row is None:
            return None
        d = dict(row)
        token_id, used = d.pop("token_id"), d.pop("token_used")
        return self._user_from(d), token_id, used

    @staticmethod
    def _user_from(d: dict) -> User:
        d["is_admin"] = bool(d["is_admin"])
        return User(**d)

    def touch_token(self, token_id: int, when: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (when, token_id))

    def list_tokens(self) -> list[ApiToken]:
        rows = self._all(
            "SELECT api_tokens.id, user_id, users.name AS user, description, api_tokens.created_at,"
            " last_used_at FROM api_tokens JOIN users ON users.id = api_tokens.user_id ORDER BY api_tokens.id"
        )
        return [ApiToken(**dict(r)) for r in rows]

    def remove_token(self, token_id: int) -> bool:
        with self.transaction() as c:
            return c.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,)).rowcount > 0

    # web sessions
    def add_session(self, id_hash: str, user_id: int, at: float) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO web_sessions (id_hash, user_id, created_at, seen_at) VALUES (?, ?, ?, ?)",
                (id_hash, user_id, at, at),
            )

    def session_user(self, id_hash: str) -> tuple[User, float, float] | None:
        """The session's user, when the session was made and when it was last seen."""
        row = self._one(
            "SELECT users.*, web_sessions.created_at AS s_created, web_sessions.seen_at AS s_seen"
            " FROM web_sessions JOIN users ON users.id = web_sessions.user_id WHERE id_hash = ?",
            (id_hash,),
        )
        if row is None:
            return None
        d = dict(row)
        created, seen = d.pop("s_created"), d.pop("s_seen")
        return self._user_from(d), created, seen

    def touch_session(self, id_hash: str, at: float) -> None:
        with self.transaction() as c:
            c.execute("UPDATE web_sessions SET seen_at = ? WHERE id_hash = ?", (at, id_hash))

    def remove_session(self, id_hash: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM web_sessions WHERE id_hash = ?", (id_hash,))

    def remove_user_sessions(self, user_id: int) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM web_sessions WHERE user_id = ?", (user_id,))

    def prune_sessions(self, created_before: float, seen_before: float) -> None:
        with self.transaction() as c:
            c.execute(
                "DELETE FROM web_sessions WHERE created_at < ? OR seen_at < ?", (created_before, seen_before)
            )

    # flash messages of a session
    def add_flash(self, id_hash: str, category: str, message: str, at: float, keep: int) -> None:
        """Queue a message for the session's next page; only the newest `keep` are kept."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO web_flashes (session_hash, category, message, at) VALUES (?, ?, ?, ?)",
                (id_hash, category, message, at),
            )
            c.execute(
                "DELETE FROM web_flashes WHERE session_hash = ? AND id NOT IN"
                " (SELECT id FROM web_flashes WHERE session_hash = ? ORDER BY id DESC LIMIT ?)",
                (id_hash, id_hash, keep),
            )

    def take_flashes(self, id_hash: str) -> list[tuple[str, str]]:
        """The session's queued (category, message) pairs, oldest first; they are removed."""
        with self.transaction() as c:
            rows = c.execute(
                "SELECT id, category, message FROM web_flashes WHERE session_hash = ? ORDER BY id",
                (id_hash,),
            ).fetchall()
            if rows:
                c.execute("DELETE FROM web_flashes WHERE session_hash = ?", (id_hash,))
        return [(r["category"], r["message"]) for r in rows]

    # failed logins
    def add_login_failure(self, username: str, ip: str, at: float) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO login_failures (username, ip, at) VALUES (?, ?, ?)", (username, ip, at))

    def login_failures(self, username: str, ip: str, since: float) -> list[float]:
        """Times of failed logins for this name from this address since `since`, newest first."""
        rows = self._all(
            "SELECT at FROM login_failures WHERE username = ? AND ip = ? AND at >= ? ORDER BY at DESC",
            (username, ip, since),
        )
        return [r["at"] for r in rows]

    def address_login_failures(self, ip: str, since: float, limit: int, besides: str = "") -> list[float]:
        """Times of the newest `limit` failures from this address since `since`, any name but
        `besides`."""
        rows = self._all(
            "SELECT at FROM login_failures WHERE ip = ? AND at >= ? AND username != ?"
            " ORDER BY at DESC LIMIT ?",
            (ip, since, besides, limit),
        )
        return [r["at"] for r in rows]

    def clear_login_failures(self, username: str, ip: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM login_failures WHERE username = ? AND ip = ?", (username, ip))

    def prune_login_failures(self, before: float) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM login_failures WHERE at < ?", (before,))
