"""The session layer: what happened in this connection, forgotten after idle time.

Over stdio the process is the connection; over HTTP it is the `Mcp-Session-Id` the client was given
(clients on the stateless 2026 protocol share one session per user). A session remembers the last image
("the previous one") and owns session-scope memories, which are purged when it expires or the server
shuts down.

Session ids are salted per `Sessions` object (per process): the stdio key is the same string in every
process, so without the salt a restarted server would find the last process's session memories again.
Each session row names its process (`owner`, as jobs do): a server killed without shutting down cannot
purge its sessions, so the next start ends the sessions whose process is gone (`recover`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from context_server.adapters.store import Store, now_iso
from context_server.domain.generation.jobs import PROCESS_OWNER, owner_is_alive

__all__ = ["Session", "Sessions"]


@dataclass
class Session:
    id: str
    user_id: str
    last_seen: float = field(default_factory=time.monotonic)
    last_image_id: str | None = None


class Sessions:
    def __init__(self, store: Store, idle_seconds: float,
                 on_expire: Callable[[str, str], object] | None = None) -> None:
        self.store = store
        self.idle_seconds = idle_seconds
        self.on_expire = on_expire
        self._sessions: dict[str, Session] = {}
        self._salt = secrets.token_hex(16)

    def session_id(self, user_id: str, key: str) -> str:
        return hashlib.sha256(f"{self._salt}\x00{user_id}\x00{key}".encode()).hexdigest()[:32]

    def touch(self, user_id: str, key: str) -> Session:
        """The live session for (user, connection key), created on first use; expires idle ones first."""
        self.expire_idle()
        sid = self.session_id(user_id, key)
        session = self._sessions.get(sid)
        now = now_iso()
        if session is None:
            session = Session(id=sid, user_id=user_id)
            self._sessions[sid] = session
            with self.store.write() as db:
                db.table("sessions").upsert(
                    {"id": sid, "user_id": user_id, "created_at": now, "last_seen_at": now,
                     "owner": PROCESS_OWNER}, pk="id"
                )
        session.last_seen = time.monotonic()
        return session

    def set_last_image(self, session: Session, image_id: str) -> None:
        session.last_image_id = image_id
        with self.store.write() as db:
            db.execute(
                "update sessions set last_image_id = ?, last_seen_at = ? where id = ? and user_id = ?",
                [image_id, now_iso(), session.id, session.user_id],
            )

    def forget_image(self, user_id: str, image_id: str) -> None:
        for session in self._sessions.values():
            if session.user_id == user_id and session.last_image_id == image_id:
                session.last_image_id = None

    def expire_idle(self) -> None:
        cutoff = time.monotonic() - self.idle_seconds
        for sid, session in list(self._sessions.items()):
            if session.last_seen < cutoff:
                self._end(sid, session)

    def recover(self) -> int:
        """End the sessions left by server processes that are gone (killed, crashed): their session-scope
        memories are purged, as a shutdown would have. Rows of live processes (another server on the same
        data directory, another machine) and rows without an owner are left. Returns how many ended."""
        rows = self.store.query("select id, user_id, owner from sessions where owner is not null")
        ended = 0
        for row in rows:
            if owner_is_alive(row["owner"]):
                continue
            if self.on_expire:
                self.on_expire(row["user_id"], row["id"])
            with self.store.write() as db:
                db.execute("delete from sessions where id = ? and user_id = ?", [row["id"], row["user_id"]])
            ended += 1
        return ended

    def close(self) -> None:
        """End every live session (server shutdown: the connections end with the process)."""
        for sid, session in list(self._sessions.items()):
            self._end(sid, session)

    def _end(self, sid: str, session: Session) -> None:
        del self._sessions[sid]
        if self.on_expire:
            self.on_expire(session.user_id, sid)
        with self.store.write() as db:
            db.execute("delete from sessions where id = ? and user_id = ?", [sid, session.user_id])
