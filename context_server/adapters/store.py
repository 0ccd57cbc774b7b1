"""SQLite, the source of truth: connection set-up, migrations, and write transactions.

Write transactions start with `BEGIN IMMEDIATE` so concurrent writers (a second stdio process, the CLI)
wait on the busy timeout instead of failing with "database is locked" at commit time.

One writer connection, behind a lock, takes every write transaction (and every read made inside one, so it
sees its own uncommitted rows). Reads outside a transaction go to a small pool of read-only connections
(`query_only`; `CONTEXT_SERVER_READ_CONNECTIONS`, default 4): in WAL mode a reader sees the last committed
state and neither waits for a writer nor makes one wait, so a search's lookups and every bearer-token check
no longer queue behind another user's commit and its fsync (issue 15).

Query convention: a lookup of a list of ids writes `+user_id = ? AND id IN (...)`. The unary `+` keeps
SQLite (which has no statistics here) from choosing the `user_id` index and scanning all of that user's
rows instead of looking each id up by primary key: 1 ms against 0.05 ms at 2,500 rows a user.
"""

from __future__ import annotations

import functools
import importlib.util
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from filelock import FileLock
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["DEFAULT_READ_CONNECTIONS", "Store", "load_migrations", "now_iso", "resource_dir"]

BUSY_TIMEOUT_MS = 15_000
#: Read-only connections a store opens at most (on demand); 0 reads through the writer connection.
DEFAULT_READ_CONNECTIONS = 4


def now_iso() -> str:
    """UTC timestamps with microseconds: they sort as text and keep insertion order within a second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def resource_dir(name: str) -> Path:
    """Find a top-level data folder (`migrations`, `prompts`) in an installed wheel or a source checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / f"_{name}", package.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the {name}/ folder next to {package}")


@functools.cache
def load_migrations() -> Migrations:
    """The migrations in migrations/schema.py, loaded once per process (every `Store.migrate` reads them)."""
    path = resource_dir("migrations") / "schema.py"
    spec = importlib.util.spec_from_file_location("context_server_schema", path)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    migrations: Migrations = module.migrations
    return migrations


class Store:
    """The writer connection (behind `lock`, for `write()` and `migrate()`) and a pool of up to
    `read_connections` read-only connections for `query()` / `one()`, all usable from any thread."""

    def __init__(self, path: Path, read_connections: int = DEFAULT_READ_CONNECTIONS) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        self.db = Database(conn)
        self.lock = threading.RLock()
        self._init_readers(read_connections, None)

    def _init_readers(self, size: int, uri: str | None) -> None:
        self._read_size = max(0, size)
        self._read_uri = uri
        self._idle: list[sqlite3.Connection] = []
        self._opened: list[sqlite3.Connection] = []
        self._readers_free = threading.Condition(threading.Lock())
        self._writer_thread: int | None = None  # the thread inside write()/migrate(), whose reads must see its rows
        self._closed = False

    @classmethod
    def read_only(cls, path: Path) -> Store:
        """An existing database opened to read and never written (`doctor`): no directory or file is made,
        no pragma set, no migration run. While another connection has it open, SQLite's own `mode=ro`;
        otherwise `immutable=1` as well, since a read-only connection would still leave `-wal` and `-shm`
        files behind. Raises `sqlite3.OperationalError` when the file is missing or unreadable."""
        store = cls.__new__(cls)
        store.path = path
        in_use = path.with_name(path.name + "-wal").exists()
        uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if in_use else "&immutable=1")
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        store.db = Database(conn)
        store.lock = threading.RLock()
        store._init_readers(0, uri)  # one short-lived process: its one connection reads
        return store

    def migrate(self) -> list[str]:
        """Apply pending migrations; two processes starting at once take turns on a file lock."""
        migrations = load_migrations()
        lock_path = self.path.with_suffix(".migrate.lock")
        # filelock: flock on POSIX, LockFileEx on Windows; the OS drops it if this process dies.
        with FileLock(str(lock_path), thread_local=False), self._writing():
            pending = [m.name for m in migrations.pending(self.db)]
            if pending:
                migrations.apply(self.db)
            return pending

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the writer connection; this thread's `query()` calls read through it meanwhile."""
        with self.lock:
            outer = self._writer_thread != threading.get_ident()
            if outer:
                self._writer_thread = threading.get_ident()
            try:
                yield
            finally:
                if outer:
                    self._writer_thread = None

    @contextmanager
    def write(self) -> Iterator[Database]:
        """A write transaction (`BEGIN IMMEDIATE`); nested calls become savepoints."""
        with self._writing():
            conn = self.db.conn
            if conn.in_transaction:
                with self.db.atomic():
                    yield self.db
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        """Rows of one statement: the last committed state from a read connection, or, inside `write()`,
        from the writer connection (which sees the transaction's own rows)."""
        if self._read_size == 0 or self._writer_thread == threading.get_ident():
            with self.lock:
                return list(self.db.query(sql, params))
        conn = self._take_reader()
        try:
            cursor = conn.execute(sql, params)
            names = [d[0] for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            self._give_back(conn)

    def one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def _take_reader(self) -> sqlite3.Connection:
        with self._readers_free:
            while True:
                if self._closed:
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                if self._idle:
                    return self._idle.pop()
                if len(self._opened) < self._read_size:
                    break
                self._readers_free.wait()
            conn = self._open_reader()  # under the pool lock (about 0.1 ms), so the pool never passes its size
            self._opened.append(conn)
            return conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._readers_free:
            if self._closed:
                conn.close()
                return
            self._idle.append(conn)
            self._readers_free.notify()

    def _open_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")  # a read connection that is handed a write fails loudly
        return conn

    def close(self) -> None:
        with self._readers_free:
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._idle.clear()
            self._readers_free.notify_all()
        with self.lock:
            self.db.close()
