"""The providers this server knows, by name."""

from __future__ import annotations

from collections.abc import Iterable

from context_server.adapters.providers.base import ModelInfo, Provider, ProviderInfo
from context_server.errors import InvalidInput

__all__ = ["ProviderRegistry"]


class ProviderRegistry:
    def __init__(self, providers: Iterable[Provider], default: str = "placeholder") -> None:
        self._providers = {p.name: p for p in providers}
        self.default = default

    @property
    def names(self) -> list[str]:
        return list(self._providers)

    def all(self) -> list[Provider]:
        return list(self._providers.values())

    def infos(self) -> list[ProviderInfo]:
        return [p.info() for p in self._providers.values()]

    def resolve(self, name: str | None, model: str | None) -> tuple[Provider, ModelInfo]:
        """The provider and model to use, or `InvalidInput` naming what is available."""
        provider = self._providers.get(name or self.default)
        if provider is None:
            raise InvalidInput(f"unknown provider {name!r}; available: {', '.join(self._providers)}")
        info = provider.info()
        if not info.configured:
            raise InvalidInput(f"provider {info.name!r} is not configured: {info.setup_hint or 'see list_providers'}")
        model_info = info.model(model)
        if model_info is None:
            names = ", ".join(m.name for m in info.models)
            raise InvalidInput(f"provider {info.name!r} has no model {model!r}; its models are {names}")
        return provider, model_info

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
