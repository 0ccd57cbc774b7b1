"""Data shapes shared by every layer: the results tools return (their output schemas) and their parts.

Pydantic models, so the MCP surface publishes them as output schemas and the domain builds them
directly; nothing here knows about MCP or storage.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, Field

__all__ = [
    "ASPECT_RATIOS",
    "MAX_PROMPT",
    "Applied",
    "AppliedReference",
    "AppliedStyle",
    "AspectRatio",
    "DeleteResult",
    "GenerateResult",
    "GenerationSummary",
    "ImageHit",
    "JobStatus",
    "LeftOutStyle",
    "ProviderDescription",
    "Timings",
    "image_uri",
]

#: Aspect ratios the public API accepts (SPEC §3): the tools' parameter type, and every check of it.
AspectRatio = Literal["1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4"]
ASPECT_RATIOS: tuple[str, ...] = get_args(AspectRatio)
#: The longest prompt (and negative prompt) a call may send, and the longest prompt sent to a provider.
MAX_PROMPT = 4000


def image_uri(image_id: str) -> str:
    """The resource that serves an image's bytes (`server/resources.py`)."""
    return f"image://{image_id}/view"


JobStatus = Literal["completed", "running", "failed"]


class AppliedStyle(BaseModel):
    memory_id: str
    content: str = Field(description="The memory in the user's own words.")
    score: float = Field(description="How relevant the memory was judged (1.0 for pinned and session styles).")
    applies_to: str | None = Field(default=None, description='"always" or the subject it is for ("logos").')
    why: str = Field(default="", description="Why it applied: pinned, this session, always, or the subject matched.")
    placement: Literal["prompt", "negative"] = Field(
        default="prompt", description='"negative": a thing the user does not want, added to the negative prompt.')
    phrase: str = Field(default="", description="The words that went to the provider.")


class LeftOutStyle(BaseModel):
    memory_id: str
    content: str
    reason: str


class AppliedReference(BaseModel):
    image_id: str
    prompt: str
    score: float
    mode: Literal["image_to_image", "prompt_continuity"]
    reason: str = Field(default="", description='How it was chosen, e.g. "newest of 3 spaceship images".')
    alternatives: list[dict[str, object]] = Field(
        default_factory=list, description="The other matching images (image_id, prompt, created_at), nearest first.")


class Applied(BaseModel):
    """The receipt: everything the enrichment step added to the caller's request."""

    styles: list[AppliedStyle] = Field(default_factory=list)
    profile: dict[str, object] = Field(default_factory=dict, description="Profile defaults that were filled in.")
    template: str | None = Field(default=None, description="The template's name.")
    template_version: int | None = Field(default=None, description="The version of the template that was rendered.")
    reference: AppliedReference | None = None
    left_out: list[LeftOutStyle] = Field(
        default_factory=list, description="Styles that matched but were left out, e.g. beaten by a more specific one.")


class Timings(BaseModel):
    enrich: float = 0.0
    provider: float = 0.0
    total: float = 0.0


class GenerateResult(BaseModel):
    """What generate_image / edit_image / get_generation report about one generation."""

    job_id: str | None = None
    status: JobStatus
    image_id: str | None = None
    uri: str | None = None
    path: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    provider: str | None = None
    model: str | None = None
    seed: int | None = None
    prompt: str
    final_prompt: str
    negative_prompt: str | None = None
    parent_id: str | None = None
    applied: Applied = Field(default_factory=Applied)
    timings_ms: Timings = Field(default_factory=Timings)
    cost_usd: float = 0.0
    progress: float = 0.0
    dry_run: bool = False
    incognito: bool = False
    notes: list[str] = Field(default_factory=list, description="Adaptations made to fit the provider.")
    error: str | None = None
    created_at: str | None = None
    deleted: bool = Field(default=False, description="The image was deleted since: no file or link remains.")


class GenerationSummary(BaseModel):
    job_id: str
    image_id: str | None
    prompt: str
    status: JobStatus
    created_at: str
    provider: str | None = None
    uri: str | None = None


class ImageHit(BaseModel):
    image_id: str
    prompt: str
    score: float
    created_at: str
    uri: str


class DeleteResult(BaseModel):
    deleted: bool
    id: str


class ProviderDescription(BaseModel):
    name: str
    configured: bool
    default_model: str
    description: str = ""
    setup_hint: str = ""
    models: list[dict[str, object]]
    capabilities: dict[str, object]
    cost_per_image_usd: dict[str, float]
