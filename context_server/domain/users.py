"""HTTP users and their bearer tokens: created and revoked with the CLI, verified on every request.

A user's id is its name. The CLI's `--user NAME`, `CONTEXT_SERVER_USER` over stdio and a token over
HTTP therefore all address the same data, and an operator can inspect a team member's images with the
ordinary verbs. Names are slugs, so an id is also a safe directory name under `images/`.

Tokens are 32 random bytes from `secrets`, shown once and stored only as their SHA-256. A fast hash is
right here: password hashing (bcrypt, scrypt) slows down guessing a low-entropy secret, but a 256-bit
random token cannot be guessed, so the stored hash is as strong as the token and a slow hash would only
add latency to every HTTP request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from context_server.adapters.store import Store, now_iso
from context_server.errors import Conflict, InvalidInput, NotFound

__all__ = ["TOKEN_PREFIX", "User", "Users", "hash_token"]

#: Marks a string as a context-server token, so secret scanners and people recognise a leaked one.
TOKEN_PREFIX = "cs_"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class User:
    id: str
    name: str
    created_at: str
    revoked_at: str | None
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created_at": self.created_at,
                "revoked_at": self.revoked_at, "active_tokens": self.tokens}


class Users:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, name: str) -> tuple[User, str]:
        """Create `name` (or reinstate a revoked one) with a new token; returns the user and the token.

        An active user is refused rather than given a second token, so `add` never silently widens
        access: revoke first, then add again, to replace a lost token.
        """
        name = name.strip().lower()
        if not _NAME.match(name):
            raise InvalidInput(
                f"user name {name!r} is not allowed: use 1..64 of a-z, 0-9, '.', '_' and '-', starting with "
                "a letter or digit"
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = now_iso()
        with self.store.write() as db:
            row = self.store.one("select * from users where name = ?", [name])
            if row is not None and row["revoked_at"] is None:
                raise Conflict(f"user {name!r} already exists; `users revoke {name}` first to issue a new token")
            if row is None:
                db.table("users").insert({"id": name, "name": name, "created_at": now, "revoked_at": None})
            else:
                db.execute("update users set revoked_at = null where id = ?", [row["id"]])
            db.table("tokens").insert({"id": secrets.token_hex(8), "user_id": name, "token_hash": hash_token(token),
                                       "created_at": now, "revoked_at": None})
        return self.get(name), token

    def get(self, name: str) -> User:
        rows = self._users("where u.name = ?", [name.strip().lower()])
        if not rows:
            raise NotFound(f"no user {name!r}")
        return rows[0]

    def all(self) -> list[User]:
        return self._users("", [])

    def revoke(self, name: str) -> User:
        """Revoke the user and every token it has; its data stays, for a later `add` or the CLI."""
        user = self.get(name)
        now = now_iso()
        with self.store.write() as db:
            db.execute("update users set revoked_at = coalesce(revoked_at, ?) where id = ?", [now, user.id])
            db.execute("update tokens set revoked_at = coalesce(revoked_at, ?) where user_id = ?", [now, user.id])
        return self.get(name)

    def verify(self, token: str) -> str | None:
        """The user id a token belongs to, or None (unknown, revoked, or its user revoked)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        row = self.store.one(
            "select t.user_id from tokens t join users u on u.id = t.user_id "
            "where t.token_hash = ? and t.revoked_at is null and u.revoked_at is null",
            [hash_token(token)],
        )
        return None if row is None else str(row["user_id"])

    def _users(self, where: str, params: list[Any]) -> list[User]:
        rows = self.store.query(
            "select u.id, u.name, u.created_at, u.revoked_at, "
            "(select count(*) from tokens t where t.user_id = u.id and t.revoked_at is null) as tokens "
            f"from users u {where} order by u.name",
            params,
        )
        return [User(id=r["id"], name=r["name"], created_at=r["created_at"], revoked_at=r["revoked_at"],
                     tokens=r["tokens"]) for r in rows]
