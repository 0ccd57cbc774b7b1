"""The store's read connections: reads never wait behind a write, and see exactly what is committed.

Real SQLite files in a temp directory; threads stand in for the server's worker threads.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from context_server.adapters.store import Store
from context_server.settings import Settings


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "context.db", read_connections=2)
    with s.write() as db:
        db.execute("create table notes (id integer primary key, body text)")
        db.execute("insert into notes (body) values ('first')")
    yield s
    s.close()


def bodies(store: Store) -> list[str]:
    return [row["body"] for row in store.query("select body from notes order by id")]


def test_a_read_is_answered_while_another_thread_holds_a_write_open_and_sees_only_what_is_committed(
    store: Store,
) -> None:
    inside, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with store.write() as db:
            db.execute("insert into notes (body) values ('second')")
            inside.set()
            assert release.wait(30)

    with ThreadPoolExecutor(2) as pool:
        writing = pool.submit(slow_writer)
        assert inside.wait(30)
        # With one shared connection this read waited for the commit; the write is still open now.
        read = pool.submit(bodies, store)
        assert read.result(timeout=10) == ["first"]
        assert not writing.done()
        release.set()
        writing.result(timeout=30)
    assert bodies(store) == ["first", "second"]  # committed: every later read sees it


def test_reads_inside_a_write_see_the_transaction_s_own_rows(store: Store) -> None:
    with store.write() as db:
        db.execute("insert into notes (body) values ('draft')")
        assert bodies(store) == ["first", "draft"]
        assert store.one("select count(*) as n from notes") == {"n": 2}
    assert bodies(store) == ["first", "draft"]


def test_a_rolled_back_write_is_never_read(store: Store) -> None:
    with pytest.raises(RuntimeError), store.write() as db:
        db.execute("insert into notes (body) values ('never')")
        raise RuntimeError("stop")
    assert bodies(store) == ["first"]


def test_a_read_connection_refuses_to_write(store: Store) -> None:
    with pytest.raises(sqlite3.OperationalError, match=r"readonly"):
        store.query("insert into notes (body) values ('sneaky')")
    assert bodies(store) == ["first"]


def test_many_threads_share_a_bounded_pool_and_all_get_their_rows(store: Store) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: bodies(store), range(200)))
    assert results == [["first"]] * 200
    assert len(store._opened) <= 2  # read_connections=2: never more open, however many threads ask


def test_zero_read_connections_reads_through_the_writer(tmp_path: Path) -> None:
    s = Store(tmp_path / "context.db", read_connections=0)
    try:
        with s.write() as db:
            db.execute("create table t (x)")
            db.execute("insert into t values (1)")
        assert s.query("select x from t") == [{"x": 1}]
        assert s._opened == []
    finally:
        s.close()


def test_a_closed_store_refuses_reads(tmp_path: Path) -> None:
    s = Store(tmp_path / "context.db")
    assert s.query("select 1 as one") == [{"one": 1}]
    s.close()
    with pytest.raises(sqlite3.ProgrammingError):
        s.query("select 1 as one")


def test_the_pool_size_is_a_setting_with_a_clear_error() -> None:
    assert Settings.from_env({}).read_connections == 4
    assert Settings.from_env({"CONTEXT_SERVER_READ_CONNECTIONS": "0"}).read_connections == 0
    with pytest.raises(ValueError, match=r"CONTEXT_SERVER_READ_CONNECTIONS.*0 to 64"):
        Settings.from_env({"CONTEXT_SERVER_READ_CONNECTIONS": "100"})
