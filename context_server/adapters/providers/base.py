"""What every image provider implements, and the facts about its models that drive validation.

A provider adapter speaks one provider's real HTTP API (through an injected `httpx.AsyncClient`, so tests
swap in `httpx.MockTransport` or point the base URL at a local fake). The domain never sees HTTP: it hands
a `ProviderRequest` and gets `ProviderImage` bytes back, or a `ProviderError` whose `may_have_charged`
says whether a retry could pay twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from context_server.models import ASPECT_RATIOS

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ASPECT_RATIOS",
    "ModelInfo",
    "ProgressFn",
    "Provider",
    "ProviderHealth",
    "ProviderImage",
    "ProviderInfo",
    "ProviderRequest",
    "SubmittedFn",
]


ProgressFn = Callable[[float, str | None], Awaitable[None]]
"""Reports progress (0..1) with an optional message."""

SubmittedFn = Callable[[str], Awaitable[None]]
"""Records the provider's own job id as soon as it exists, so a restart can resume polling."""


@dataclass(frozen=True)
class ModelInfo:
    """One model's capabilities and cost; the generation domain validates every call against it."""

    name: str
    cost_usd: float
    text_to_image: bool = True
    image_to_image: bool = False
    mask: bool = False
    negative_prompt: bool = False
    seed: bool = False
    #: Exact sizes the model accepts (width, height); empty means any size within min_side..max_side.
    sizes: tuple[tuple[int, int], ...] = ()
    #: Aspect ratios the model accepts natively; empty means "derived from sizes or free".
    aspect_ratios: tuple[str, ...] = ()
    min_side: int = 64
    max_side: int = 4096
    #: Sizes must be multiples of this (e.g. 64 for SD).
    multiple_of: int = 8

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "cost_usd": self.cost_usd,
            "text_to_image": self.text_to_image,
            "image_to_image": self.image_to_image,
            "mask": self.mask,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "sizes": [f"{w}x{h}" for w, h in self.sizes],
            "aspect_ratios": list(self.aspect_ratios),
            "min_side": self.min_side,
            "max_side": self.max_side,
        }


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    configured: bool
    models: tuple[ModelInfo, ...]
    default_model: str
    #: Why the provider is not configured ("set" and the variable to set); empty when configured.
    setup_hint: str = ""
    description: str = ""

    def model(self, name: str | None) -> ModelInfo | None:
        wanted = name or self.default_model
        return next((m for m in self.models if m.name == wanted), None)


@dataclass
class ProviderRequest:
    prompt: str
    model: str
    width: int
    height: int
    negative_prompt: str | None = None
    seed: int | None = None
    #: Encoded source image (PNG) for image-to-image and edits.
    init_image: bytes | None = None
    #: 0..1; how far from the source image the result may move (image-to-image / edit).
    strength: float | None = None
    #: Encoded mask (PNG); transparent/white areas are repainted, depending on the provider.
    mask: bytes | None = None
    #: A provider job id recorded earlier (`SubmittedFn`): resume polling instead of submitting again.
    resume_id: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class ProviderImage:
    data: bytes
    model: str
    seed: int | None = None
    #: The prompt as the provider rewrote it (dall-e-3 does), if it says.
    revised_prompt: str | None = None
    #: Adaptations the adapter made (e.g. "size 1000x1000 snapped to 1024x1024").
    notes: list[str] = field(default_factory=list)
    #: The adapter's estimate for this exact call when it differs from `ModelInfo.cost_usd`
    #: (e.g. gpt-image-1 costs more for non-square sizes); None means "use the model's cost".
    cost_usd: float | None = None


@dataclass(frozen=True)
class ProviderHealth:
    """What one free request to a provider (listing models, account details, progress) came back with."""

    base_url: str
    #: The URL asked.
    url: str
    #: The settings behind it, for the fix a failure suggests.
    base_env: str
    key_env: str | None
    #: The HTTP status, or None when nothing answered (`error` says why).
    status_code: int | None = None
    error: str | None = None


class Provider(Protocol):
    name: str

    def info(self) -> ProviderInfo: ...

    async def generate(
        self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn
    ) -> ProviderImage:
        """Text-to-image, or image-to-image when `request.init_image` is set."""
        ...

    async def edit(self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn) -> ProviderImage:
        """Edit `request.init_image` following `request.prompt`, inside `request.mask` when given."""
        ...

    def health_check(self, *, transport: httpx.BaseTransport | None = None,
                     timeout: float = 3.0) -> ProviderHealth | None:
        """One request that costs nothing, to see that the provider answers and takes the key; None when
        there is nothing to reach (offline providers)."""
        ...

    async def aclose(self) -> None: ...
