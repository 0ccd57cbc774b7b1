"""The validated shape of a generation or edit request, as the domain receives it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from context_server.adapters.providers.base import ASPECT_RATIOS
from context_server.errors import InvalidInput

__all__ = ["GenerationInput", "request_hash"]

MAX_PROMPT = 4000

#: Fields that do not change what a request asks for: a retry may wait where the first call did not.
_NOT_HASHED = frozenset({"request_id", "wait"})


def request_hash(fields: dict[str, Any]) -> str:
    """The hash an idempotency key is bound to: SHA-256 of the request's canonical JSON (sorted keys),
    every field but the key itself and `wait`."""
    canonical = json.dumps({k: v for k, v in fields.items() if k not in _NOT_HASHED},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class GenerationInput:
    prompt: str
    kind: Literal["generate", "edit"] = "generate"
    template: str | None = None
    template_args: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    input_image_url: str | None = None
    provider: str | None = None
    model: str | None = None
    width: int | None = None
    height: int | None = None
    aspect_ratio: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    apply_memory: bool = True
    dry_run: bool = False
    incognito: bool = False
    request_id: str | None = None
    wait: bool = True
    #: edit_image: the image to edit (id or reference words), an optional mask image id, and strength.
    mask_image: str | None = None
    strength: float | None = None

    def validate(self) -> None:
        """Checks the schema cannot express; messages say what is allowed."""
        if not self.prompt or not self.prompt.strip():
            raise InvalidInput("prompt must not be empty (1..4000 characters)")
        if len(self.prompt) > MAX_PROMPT:
            raise InvalidInput(f"prompt is {len(self.prompt)} characters; at most {MAX_PROMPT} are allowed")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and not 64 <= value <= 4096:
                raise InvalidInput(f"{name} must be between 64 and 4096, got {value}")
        if self.aspect_ratio is not None and self.aspect_ratio not in ASPECT_RATIOS:
            raise InvalidInput(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}, got {self.aspect_ratio!r}")
        if self.negative_prompt is not None and len(self.negative_prompt) > MAX_PROMPT:
            raise InvalidInput(f"negative_prompt is at most {MAX_PROMPT} characters")
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise InvalidInput("seed must be between 0 and 4294967295")
        if self.strength is not None and not 0 <= self.strength <= 1:
            raise InvalidInput(f"strength must be between 0 and 1, got {self.strength}")
        if self.request_id is not None and not 1 <= len(self.request_id) <= 200:
            raise InvalidInput("request_id must be 1..200 characters")
        if self.reference is not None and not 1 <= len(self.reference) <= 500:
            raise InvalidInput("reference must be 1..500 characters (an image id or words like 'the previous one')")
        if len(self.template_args) > 50:
            raise InvalidInput("template_args has at most 50 entries")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def request_hash(self) -> str:
        return request_hash(self.as_dict())
