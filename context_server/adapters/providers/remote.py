"""The four remote adapters, built from the provider environment and one shared HTTP client.

The composition root calls `build_remote_providers(settings.provider_env, client)` once and adds
the placeholder provider itself. Every adapter is returned, configured or not, so
`list_providers` can show what is missing: `info().configured` and `info().setup_hint` say.
"""

from __future__ import annotations

import httpx

from context_server.adapters.providers.base import Provider
from context_server.adapters.providers.openai import OpenAIProvider
from context_server.adapters.providers.replicate import ReplicateProvider
from context_server.adapters.providers.sd_webui import SdWebUIProvider
from context_server.adapters.providers.stability import StabilityProvider

__all__ = ["build_remote_providers"]


def build_remote_providers(env: dict[str, str], client: httpx.AsyncClient) -> list[Provider]:
    """openai, stability, sd_webui, replicate — in that order."""
    return [
        OpenAIProvider(env, client),
        StabilityProvider(env, client),
        SdWebUIProvider(env, client),
        ReplicateProvider(env, client),
    ]
