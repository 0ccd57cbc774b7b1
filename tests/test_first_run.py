"""A new user's first run, as they would see it: `doctor` changes nothing, whatever it finds. (`demo` on an
empty data directory and an empty model cache, quiet the first time and the next, is checked on the installed
wheel: tests/test_install.py.)"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from context_server.adapters.store import Store
from context_server.domain.health import check_index
from context_server.domain.search.indexing import Indexer

from .conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
NESTED_PARENTHESES = re.compile(r"\([^()]*\(")


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A verb's output and exit code, in process (`run_cli`)."""
    return run_cli(home, *args, **env)


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under `folder`: its content hash and modification time."""
    return {str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_doctor_on_a_missing_data_directory_reports_it_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "not" / "yet"
    for offline in (["--offline"], []):
        done = cli(home, "doctor", *offline, CONTEXT_SERVER_LOG_LEVEL="WARNING")
        assert done.returncode == 0, done.stdout + done.stderr
        assert not home.exists() and not (tmp_path / "not").exists()
        lines = done.stdout.splitlines()
        assert f"PENDING  data directory: {home} does not exist yet; the server creates it when it first starts" in lines
        assert "PENDING  index: not built yet; the server builds it when it first starts" in lines
        assert "fix:" not in done.stdout  # nothing needs fixing: the first start does it all
        assert not NESTED_PARENTHESES.search(done.stdout), done.stdout


def test_doctor_on_an_existing_database_changes_no_byte_and_shows_pending_changes_as_pending(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    store = Store(home / "context.db")
    store.migrate()
    with store.write() as db:
        db.table("outbox").insert({"user_id": "local", "collection": "images", "item_id": "abc", "op": "delete",
                                   "document": "", "created_at": "2025-01-01T00:00:00.000000Z"})
        db.table("index_meta").insert_all([
            {"key": "index_id", "value": "x"}, {"key": "embed_model", "value": "all-MiniLM-L6-v2"},
            {"key": "embed_dimension", "value": "384"}, {"key": "layout", "value": "2"}])
        # As a database from the previous version: its newest migration not applied yet.
        db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm011_store_item_vectors'")
        db.execute("DROP TABLE item_vectors")
    store.close()
    before = snapshot(home)

    done = cli(home, "doctor", "--offline", CONTEXT_SERVER_LOG_LEVEL="WARNING")
    assert snapshot(home) == before  # no byte, no modification time, no new file (not even -wal or -shm)
    lines = done.stdout.splitlines()
    assert any(line.startswith("PENDING  database:") and "1 schema migration(s) will be applied when the "
               "server next starts" in line for line in lines), done.stdout
    assert not NESTED_PARENTHESES.search(done.stdout), done.stdout
    # The index folder is missing although one was recorded: a real problem, with its fix.
    assert any(line.startswith("FAIL     index: its folder was deleted or replaced") for line in lines)
    assert "fix: context-server reindex" in done.stdout and done.returncode == 1


def test_waiting_changes_are_shown_as_pending_without_a_fix(store: Store, indexer: Indexer) -> None:
    assert indexer.take_index()
    check = check_index(indexer)
    assert (check.status, check.detail, check.fix) == ("ok", "healthy, built with all-MiniLM-L6-v2", "")
    with store.write() as db:
        db.table("memories").insert({"id": "m1", "user_id": "ann", "content": "riso print texture",
                                     "kind": "style", "scope": "long_term", "created_at": "2025-01-01",
                                     "updated_at": "2025-01-01"})
        indexer.enqueue(db, "ann", "memories", "m1", "upsert", "riso print texture")
    check = check_index(indexer)
    assert check.status == "pending" and check.fix == ""
    assert check.detail.endswith("1 change is waiting to be indexed, which the server does when it next starts")
