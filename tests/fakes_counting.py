"""Placeholder providers with real behaviour plus one observable difference (slow, counting, failing)."""

from __future__ import annotations

import asyncio

from context_server.adapters.providers.base import ProgressFn, ProviderImage, ProviderRequest, SubmittedFn
from context_server.adapters.providers.placeholder import PlaceholderProvider
from context_server.errors import ProviderError


class CountingProvider(PlaceholderProvider):
    """Draws like the placeholder, counts calls, and can be slowed down or made to fail."""

    def __init__(self, delay: float = 0.0, fail: str | None = None) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = fail
        self.requests: list[ProviderRequest] = []

    async def generate(self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn) -> ProviderImage:
        self.calls += 1
        self.requests.append(request)
        steps = 5
        for i in range(steps):
            await progress(i / steps, f"step {i}")
            await asyncio.sleep(self.delay / steps)
        if self.fail:
            raise ProviderError(self.fail)
        return await super().generate(request, progress, submitted)
