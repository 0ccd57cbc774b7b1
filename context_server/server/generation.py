"""Tool registration: thin functions whose bodies call the domain, with every parameter described."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, ParamSpec, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from context_server.domain.generation.input import GenerationInput
from context_server.errors import ContextServerError
from context_server.models import DeleteResult, GenerateResult, GenerationSummary, ProviderDescription
from context_server.server.auth import current_user, session_key
from context_server.server.results import generation_result, structured
from context_server.server.viewer import VIEWER_META

if TYPE_CHECKING:
    from context_server.app import App

__all__ = ["register_tools"]

P = ParamSpec("P")
R = TypeVar("R")

AspectRatio = Literal["1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4"]
Prompt = Annotated[str, Field(min_length=1, max_length=4000, description="What to draw, in plain words (1..4000 characters).")]
Side = Annotated[int | None, Field(ge=64, le=4096, description="Pixels, 64..4096. Snapped to a size the model accepts (reported in notes).")]
RequestId = Annotated[str | None, Field(max_length=200, description="Idempotency key: the same request_id again returns the first call's result without a second provider call.")]

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def domain_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Domain errors become tool errors whose text is the domain's message (what was wrong, what is allowed)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ContextServerError as exc:
            raise ToolError(str(exc)) from exc

    return wrapper


class RecentGenerations(BaseModel):
    generations: list[GenerationSummary]
    next_cursor: str | None = None


class ProviderUsage(BaseModel):
    provider: str
    generations: int
    cost_usd: float


class Usage(BaseModel):
    period: str
    since: str
    providers: list[ProviderUsage]
    total_cost_usd: float
    daily_budget_usd: float | None = None
    budget_left_usd: float | None = None


class ProviderList(BaseModel):
    providers: list[ProviderDescription]


def _progress_sink(ctx: Context) -> Callable[[float, str | None], Awaitable[None]]:
    async def sink(fraction: float, message: str | None) -> None:
        await ctx.report_progress(fraction, 1.0, message)

    return sink


def register_tools(server: MCPServer, app: App) -> None:
    async def run(ctx: Context, inp: GenerationInput) -> CallToolResult:
        """generate_image and edit_image: this caller's session, progress to their client, the result."""
        user = current_user(app)
        session = app.sessions.touch(user, session_key(ctx))
        result = await app.generation.generate(user, session, inp, _progress_sink(ctx))
        return generation_result(result, app.files)

    @domain_errors
    async def generate_image(
        ctx: Context,
        prompt: Prompt,
        template: Annotated[str | None, Field(description="Name of a prompt template to render first (see list_templates).")] = None,
        template_args: Annotated[dict[str, Any] | None, Field(description="Arguments for the template's {placeholders}.")] = None,
        reference: Annotated[str | None, Field(max_length=500, description="An earlier image to build on: its image_id, or words such as 'my last spaceship image' or 'the previous one'.")] = None,
        input_image_url: Annotated[str | None, Field(max_length=2048, description="An https URL of a public image to start from (image-to-image).")] = None,
        provider: Annotated[str | None, Field(description="Provider name (see list_providers); default from the profile, else 'placeholder'.")] = None,
        model: Annotated[str | None, Field(description="Model name of the provider (see list_providers).")] = None,
        width: Side = None,
        height: Side = None,
        aspect_ratio: Annotated[AspectRatio | None, Field(description="One of 1:1, 16:9, 9:16, 3:2, 2:3, 4:3, 3:4; used when width/height are not both given.")] = None,
        negative_prompt: Annotated[str | None, Field(max_length=4000, description="What to keep out of the image.")] = None,
        seed: Annotated[int | None, Field(ge=0, le=4294967295, description="Seed for reproducible results, where the model supports seeds.")] = None,
        apply_memory: Annotated[bool, Field(description="Apply profile defaults, remembered styles and reference memory (default true).")] = True,
        dry_run: Annotated[bool, Field(description="Only enrich and report the final prompt and receipt: no provider call, nothing stored.")] = False,
        incognito: Annotated[bool, Field(description="Nothing about this call is remembered or indexed.")] = False,
        request_id: RequestId = None,
        wait: Annotated[bool, Field(description="Wait for the image (up to CONTEXT_SERVER_WAIT_SECONDS); false returns a running job at once.")] = True,
    ) -> Annotated[CallToolResult, GenerateResult]:
        """Generate an image. Remembered styles, profile defaults, a template and a reference image are applied
        first; the result's `applied` receipt lists everything added. Returns a preview and a link to the full image."""
        return await run(ctx, GenerationInput(
            prompt=prompt, template=template, template_args=template_args or {}, reference=reference,
            input_image_url=input_image_url, provider=provider, model=model, width=width, height=height,
            aspect_ratio=aspect_ratio, negative_prompt=negative_prompt, seed=seed, apply_memory=apply_memory,
            dry_run=dry_run, incognito=incognito, request_id=request_id, wait=wait,
        ))

    @domain_errors
    async def edit_image(
        ctx: Context,
        image: Annotated[str, Field(min_length=1, max_length=500, description="The image to edit: its image_id, or words such as 'the previous one' or 'my last logo image'.")],
        instruction: Annotated[str, Field(min_length=1, max_length=4000, description="What to change, in plain words.")],
        mask_image: Annotated[str | None, Field(max_length=500, description="image_id of a mask: white (or transparent) areas are repainted, black areas kept. Needs a model with mask support.")] = None,
        strength: Annotated[float | None, Field(ge=0, le=1, description="0..1: how far the result may move from the source (providers that take it).")] = None,
        provider: Annotated[str | None, Field(description="Provider name (see list_providers); default from the profile, else 'placeholder'.")] = None,
        model: Annotated[str | None, Field(description="Model name of the provider (see list_providers).")] = None,
        request_id: RequestId = None,
    ) -> Annotated[CallToolResult, GenerateResult]:
        """Edit an earlier image following an instruction. The result is a new image whose parent_id is the
        source; the source is kept."""
        return await run(ctx, GenerationInput(
            prompt=instruction, kind="edit", reference=image, mask_image=mask_image, strength=strength,
            provider=provider, model=model, request_id=request_id))

    @domain_errors
    async def get_usage(
        period: Annotated[Literal["day", "month"], Field(description="'day' (since 00:00 UTC) or 'month' (since the 1st).")] = "day",
    ) -> Annotated[CallToolResult, Usage]:
        """Generations and estimated cost per provider in this period, and what is left of the daily budget."""
        out = Usage.model_validate(app.usage(current_user(app), period))
        lines = [f"{p.provider}: {p.generations} generations, ${p.cost_usd:.3f}" for p in out.providers]
        lines.append(f"Total ${out.total_cost_usd:.3f}" + (
            f"; ${out.budget_left_usd:.2f} left of today's ${out.daily_budget_usd:.2f} budget"
            if out.daily_budget_usd is not None else "; no daily budget set"))
        return structured(out, "\n".join(lines))

    @domain_errors
    async def get_generation(
        job_id: Annotated[str, Field(min_length=1, max_length=64, description="The job_id returned by generate_image or edit_image.")],
    ) -> Annotated[CallToolResult, GenerateResult]:
        """The status (running, completed, failed), progress 0..1, and the result of a generation job."""
        return generation_result(app.generation.result(current_user(app), job_id), app.files)

    @domain_errors
    async def list_recent_generations(
        limit: Annotated[int, Field(ge=1, le=100, description="How many to return (1..100).")] = 10,
        cursor: Annotated[str | None, Field(description="next_cursor from the previous page.")] = None,
    ) -> Annotated[CallToolResult, RecentGenerations]:
        """This user's generation jobs, newest first."""
        rows, nxt = app.jobs.recent(current_user(app), limit, cursor)
        items = [
            GenerationSummary(job_id=r["id"], image_id=r["image_id"], status=r["status"], created_at=r["created_at"],
                              provider=r["provider"], prompt=_job_prompt(r),
                              uri=f"image://{r['image_id']}/view" if r["image_id"] else None)
            for r in rows
        ]
        out = RecentGenerations(generations=items, next_cursor=nxt)
        text = "\n".join(f"{g.created_at} {g.status:9} {g.job_id} {g.prompt[:60]}" for g in items) or "No generations yet."
        return structured(out, text)

    @domain_errors
    async def delete_image(
        image_id: Annotated[str, Field(min_length=1, max_length=64, description="The image to delete.")],
    ) -> Annotated[CallToolResult, DeleteResult]:
        """Delete an image: its file, its metadata and its search-index entry. Cannot be undone."""
        user = current_user(app)
        app.images.delete(user, image_id)
        app.sessions.forget_image(user, image_id)
        return structured(DeleteResult(deleted=True, id=image_id), f"Deleted image {image_id}.")

    @domain_errors
    async def list_providers() -> Annotated[CallToolResult, ProviderList]:
        """The image providers, whether each is configured, their models, capabilities and cost per image."""
        out = ProviderList(providers=[describe_provider(info) for info in app.providers.infos()])
        text = "\n".join(f"{p.name}: {'configured' if p.configured else 'not configured'}"
                         f" ({', '.join(str(m['name']) for m in p.models)})" for p in out.providers)
        return structured(out, text)

    server.add_tool(generate_image, title="Generate image", meta=VIEWER_META, annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True))
    server.add_tool(edit_image, title="Edit image", meta=VIEWER_META, annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True))
    server.add_tool(get_generation, title="Get generation", meta=VIEWER_META, annotations=READ)
    server.add_tool(get_usage, title="Get usage", annotations=READ)
    server.add_tool(list_recent_generations, title="List recent generations", annotations=READ)
    server.add_tool(delete_image, title="Delete image", annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False))
    server.add_tool(list_providers, title="List providers", annotations=READ)


def _job_prompt(row: dict[str, Any]) -> str:
    import json

    params = json.loads(row["params"] or "{}")
    return str(params.get("input", {}).get("prompt", ""))


def describe_provider(info: Any) -> ProviderDescription:
    caps = {
        "text_to_image": any(m.text_to_image for m in info.models),
        "image_to_image": any(m.image_to_image for m in info.models),
        "mask": any(m.mask for m in info.models),
        "negative_prompt": any(m.negative_prompt for m in info.models),
        "seed": any(m.seed for m in info.models),
        "aspect_ratios": sorted({r for m in info.models for r in m.aspect_ratios}),
    }
    return ProviderDescription(
        name=info.name, configured=info.configured, default_model=info.default_model,
        description=info.description, setup_hint=info.setup_hint,
        models=[m.as_dict() for m in info.models], capabilities=caps,
        cost_per_image_usd={m.name: m.cost_usd for m in info.models},
    )
