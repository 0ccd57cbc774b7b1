"""The composition root: builds every part from one `Settings`, so a test can run two servers side by side.

Start-up is split in two. `App.create` does only what the first answer needs (SQLite, migrations,
providers). The heavy work — loading the embedding model, taking the Chroma directory lock, repairing and
draining the index — starts in the background once the client's first real request has been answered
(or after `startup.FIRST_ANSWER_FALLBACK_SECONDS`), so it never delays that answer; the first call that needs the
model waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from context_server.adapters.embedder import Embedder
from context_server.adapters.fetch import fetch_remote_image
from context_server.adapters.files import ImageFiles
from context_server.adapters.providers.base import Provider
from context_server.adapters.providers.placeholder import PlaceholderProvider
from context_server.adapters.providers.registry import ProviderRegistry
from context_server.adapters.providers.remote import build_remote_providers
from context_server.adapters.store import Store
from context_server.domain.audit import Audit
from context_server.domain.generation.enrichment import Enricher
from context_server.domain.generation.jobs import JobRunner, Jobs
from context_server.domain.generation.limits import RateLimiter
from context_server.domain.generation.service import Generations
from context_server.domain.generation.usage import UsageLedger
from context_server.domain.images import Images
from context_server.domain.memory.references import References, fill_subjects
from context_server.domain.memory.service import Memories
from context_server.domain.memory.styles import StyleSelector, fill_style_keys
from context_server.domain.profile import Profiles
from context_server.domain.search.indexing import Indexer
from context_server.domain.sessions import Sessions
from context_server.domain.templates.library import TemplateLibrary
from context_server.domain.users import Users
from context_server.settings import Settings
from context_server.startup import after_first_answer

__all__ = ["App", "build_indexer", "default_providers"]

log = logging.getLogger(__name__)

MAINTAIN_EVERY_SECONDS = 10.0
#: How often the warm-up loop looks for collections a query found uncached (copying one in takes 0.1-0.3 s
#: of a background thread; until then Chroma answers that user's queries).
COPY_POLL_SECONDS = 1.0


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every provider client this process makes: reading the CA bundle costs ~40 ms,
    paid once instead of per App (the tests build hundreds)."""
    return httpx.create_ssl_context()


def build_indexer(settings: Settings, store: Store, embedder: Embedder) -> Indexer:
    """The index as the server wires it from its settings (tests and benchmarks build theirs the same way)."""
    return Indexer.for_directory(store, embedder, settings.chroma_path, chroma_url=settings.chroma_url,
                                 cache_mb=settings.vector_cache_mb)


def default_providers(settings: Settings, client: httpx.AsyncClient) -> list[Provider]:
    return [PlaceholderProvider(), *build_remote_providers(settings.provider_env, client)]


@dataclass
class App:
    settings: Settings
    store: Store
    files: ImageFiles
    http: httpx.AsyncClient
    fetch_clients: list[httpx.AsyncClient]
    providers: ProviderRegistry
    embedder: Embedder
    indexer: Indexer
    memories: Memories
    jobs: Jobs
    runner: JobRunner
    sessions: Sessions
    profiles: Profiles
    images: Images
    templates: TemplateLibrary
    generations: Generations
    usage: UsageLedger
    users: Users
    audit: Audit
    _started: bool = field(default=False, repr=False)
    _first_request: asyncio.Event | None = field(default=None, repr=False)
    _background: list[asyncio.Task[Any]] = field(default_factory=list, repr=False)

    @classmethod
    def create(cls, settings: Settings, *, http_client: httpx.AsyncClient | None = None,
               providers: Sequence[Provider] | None = None, embedder: Embedder | None = None) -> App:
        settings.home.mkdir(parents=True, exist_ok=True)
        store = Store(settings.db_path, settings.read_connections)
        store.migrate()
        files = ImageFiles(settings.images_path)
        http = http_client or httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0), verify=_tls_context())
        # Remote image fetches get a client of their own (no base URL, no provider auth headers), made on
        # first use: most sessions never fetch a URL, and a client costs ~30 ms of start-up.
        fetch_clients: list[httpx.AsyncClient] = []
        registry = ProviderRegistry(providers if providers is not None else default_providers(settings, http),
                                    default=settings.default_provider)
        embedder = embedder or Embedder(settings.embed_threads, cache_dir=settings.models_path)
        indexer = build_indexer(settings, store, embedder)
        memories = Memories(store, indexer)
        jobs = Jobs(store)
        sessions = Sessions(store, settings.session_idle_seconds, on_expire=memories.purge_session)
        profiles = Profiles(store, registry.names)
        images = Images(store, files, indexer)
        templates = TemplateLibrary(store)
        references = References(store, lambda user, query, limit: indexer.search(user, "images", query, limit))

        async def fetch(url: str) -> bytes:
            if not fetch_clients:
                fetch_clients.append(httpx.AsyncClient(follow_redirects=False, trust_env=False))
            return await fetch_remote_image(url, fetch_clients[0])

        enricher = Enricher(profiles, templates, references, images, registry, fetch, StyleSelector(store))
        generations = Generations(
            store, files, registry, enricher, jobs, JobRunner(), sessions,
            RateLimiter(settings.rate_limit_per_minute), settings.wait_seconds, images=images, memories=memories,
        )
        return cls(settings=settings, store=store, files=files, http=http, fetch_clients=fetch_clients,
                   providers=registry, embedder=embedder, indexer=indexer, memories=memories, jobs=jobs,
                   runner=generations.runner, sessions=sessions, profiles=profiles, images=images,
                   templates=templates, generations=generations, usage=UsageLedger(store, profiles), users=Users(store),
                   audit=Audit(store))

    @property
    def started(self) -> bool:
        return self._started

    async def start(self) -> None:
        """What runs before the first answer is cheap; the warm-up waits for `request_answered`."""
        self.start_now()

    def start_now(self) -> None:
        """`start`, for callers on the event loop's thread that cannot await (the server's `DeferredApp`)."""
        if self._started:
            return
        self._started = True
        try:
            if ended := self.sessions.recover():
                log.info("ended %d session(s) of a server that stopped without shutting down", ended)
        except Exception:
            log.exception("could not end the sessions a stopped server left behind")
        self._first_request = asyncio.Event()
        for job in self.jobs.interrupted():
            if not self.generations.resume(job):
                self.jobs.fail(job["user_id"], job["id"],
                               "interrupted by a server restart before it finished; nothing was stored, "
                               "generate again")
        self._background.append(asyncio.get_running_loop().create_task(self._warm_up(), name="warm-up"))

    def request_answered(self) -> None:
        """Called after each request is answered; the first one releases the warm-up."""
        if self._first_request is not None and not self._first_request.is_set():
            self._first_request.set()

    async def _warm_up(self) -> None:
        assert self._first_request is not None
        await after_first_answer(self._first_request)
        self.embedder.start()
        try:
            await anyio.to_thread.run_sync(fill_subjects, self.store)
            await anyio.to_thread.run_sync(fill_style_keys, self.store)
        except Exception:
            log.exception("could not describe the images and styles stored before this version; they are read one "
                          "by one")
        self.indexer.copy_early(self.settings.user)  # over stdio the one user; over HTTP the default one
        self.indexer.start_draining()  # from here on a write's reply does not wait for Chroma
        loop = asyncio.get_running_loop()
        next_maintenance = loop.time()
        while True:
            try:
                if loop.time() >= next_maintenance:
                    try:
                        await anyio.to_thread.run_sync(self.indexer.maintain)
                    finally:  # a failing pass is retried after the same pause, not at every poll
                        next_maintenance = loop.time() + MAINTAIN_EVERY_SECONDS
                elif self.indexer.copies_wanted():
                    await anyio.to_thread.run_sync(self.indexer.load_copies)
            except Exception:
                log.exception("index maintenance failed; searches use the full-text fallback meanwhile")
            await asyncio.sleep(COPY_POLL_SECONDS)

    async def aclose(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(BaseException):
                await task
        await self.runner.aclose()
        await self.providers.aclose()
        await self.http.aclose()
        for client in self.fetch_clients:
            await client.aclose()
        try:
            self.sessions.close()
        except Exception:
            log.warning("could not purge the ending sessions' memories", exc_info=True)
        # Closing waits behind a warm-up still loading the model; a stopping server need not wait for that:
        # the kernel releases the directory lock when the process exits, and SQLite stays the truth.
        with anyio.move_on_after(0.5):
            await anyio.to_thread.run_sync(self.indexer.close, abandon_on_cancel=True)
        try:
            self.audit.close()
        except Exception:
            log.warning("could not write the last audit rows", exc_info=True)
        self.store.close()
