"""The composition root: builds every part from one `Settings`, so a test can run two servers side by side."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from .adapters.files import ImageFiles
from .adapters.providers.base import Provider
from .adapters.providers.placeholder import PlaceholderProvider
from .adapters.providers.registry import ProviderRegistry
from .adapters.store import Store
from .domain.audit import Audit
from .domain.enrichment import Enricher
from .domain.generation import GenerationService
from .domain.images import Images
from .domain.jobs import JobRunner, Jobs
from .domain.limits import RateLimiter, spent_since, start_of_day
from .domain.profile import Profiles
from .domain.sessions import Sessions
from .domain.templates import TemplateLibrary
from .domain.users import Users
from .settings import Settings

__all__ = ["App"]

log = logging.getLogger(__name__)


def default_providers(settings: Settings, client: httpx.AsyncClient) -> list[Provider]:
    return [PlaceholderProvider()]


@dataclass
class App:
    settings: Settings
    store: Store
    files: ImageFiles
    http: httpx.AsyncClient
    providers: ProviderRegistry
    jobs: Jobs
    runner: JobRunner
    sessions: Sessions
    profiles: Profiles
    images: Images
    templates: TemplateLibrary
    generation: GenerationService
    users: Users
    audit: Audit
    _started: bool = field(default=False, repr=False)

    @classmethod
    def create(cls, settings: Settings, *, http_client: httpx.AsyncClient | None = None,
               providers: Sequence[Provider] | None = None) -> App:
        settings.home.mkdir(parents=True, exist_ok=True)
        store = Store(settings.db_path)
        store.migrate()
        files = ImageFiles(settings.images_path)
        http = http_client or httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))
        registry = ProviderRegistry(providers if providers is not None else default_providers(settings, http))
        jobs = Jobs(store)
        runner = JobRunner()
        sessions = Sessions(store, settings.session_idle_seconds)
        profiles = Profiles(store, registry.names)
        images = Images(store, files)
        templates = TemplateLibrary(store)
        generation = GenerationService(
            store, files, registry, Enricher(profiles, templates), jobs, runner, sessions,
            RateLimiter(settings.rate_limit_per_minute), settings.wait_seconds,
        )
        return cls(settings=settings, store=store, files=files, http=http, providers=registry, jobs=jobs,
                   runner=runner, sessions=sessions, profiles=profiles, images=images, templates=templates,
                   generation=generation, users=Users(store), audit=Audit(store))

    async def start(self) -> None:
        """Work that must not delay the first answer to a client runs here, after the server is up."""
        if self._started:
            return
        self._started = True
        for job in self.jobs.interrupted():
            self.jobs.fail(job["user_id"], job["id"],
                           "interrupted by a server restart before it finished; nothing was stored, generate again")

    async def aclose(self) -> None:
        await self.runner.aclose()
        await self.providers.aclose()
        await self.http.aclose()
        self.store.close()

    def style_words(self, user_id: str, limit: int = 50) -> list[str]:
        """Short remembered styles ("muted watercolour"), offered as completions for style-like arguments."""
        rows = self.store.query(
            "select content from memories where user_id = ? and kind = 'style' and scope = 'long_term' "
            "and length(content) <= 60 order by use_count desc, updated_at desc limit ?",
            [user_id, limit],
        )
        return [r["content"] for r in rows]

    def usage(self, user_id: str, period: str) -> dict[str, Any]:
        from datetime import UTC, datetime

        if period not in ("day", "month"):
            from .errors import InvalidInput

            raise InvalidInput("period must be 'day' or 'month'")
        since = start_of_day() if period == "day" else datetime.now(UTC).strftime("%Y-%m-01T00:00:00.000000Z")
        rows = self.store.query(
            "select provider, count(*) as generations, coalesce(sum(cost_usd), 0) as cost_usd from usage "
            "where user_id = ? and created_at >= ? group by provider order by provider",
            [user_id, since],
        )
        budget = self.profiles.get(user_id)["daily_budget_usd"]
        spent_today = spent_since(self.store, user_id, start_of_day())
        return {
            "period": period,
            "since": since,
            "providers": [{"provider": r["provider"], "generations": r["generations"],
                           "cost_usd": round(r["cost_usd"], 4)} for r in rows],
            "total_cost_usd": round(sum(r["cost_usd"] for r in rows), 4),
            "daily_budget_usd": budget,
            "budget_left_usd": None if budget is None else round(max(0.0, budget - spent_today), 4),
        }
