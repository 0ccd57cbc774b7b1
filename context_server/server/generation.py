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
from context_server.domain.paging import encode_cursor
from context_server.errors import ContextServerError
from context_server.models import (
    MAX_PROMPT,
    AspectRatio,
    DeleteResult,
    GenerateResult,
    GenerationSummary,
    ProviderDescription,
    image_uri,
)
from context_server.server.auth import current_user, session_key
from context_server.server.results import (
    clip,
    cut_note,
    fit_list,
    generation_result,
    one_line,
    plural,
    structured,
)
from context_server.server.viewer import VIEWER_META

if TYPE_CHECKING:
    from context_server.app import App
    from context_server.domain.generation.jobs import JobRow

__all__ = ["register_tools"]

P = ParamSpec("P")
R = TypeVar("R")

Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT, description="What to draw, in plain words.")]
Side = Annotated[int | None, Field(ge=64, le=4096, description="Pixels; snapped to a size the model accepts.")]
RequestId = Annotated[str | None, Field(max_length=200, description="Idempotency key: a repeat returns the first result, no second charge.")]
ProviderName = Annotated[str | None, Field(description="See list_providers; default: the profile's, else placeholder.")]
ModelName = Annotated[str | None, Field(description="A model of the provider (list_providers).")]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous page.")]

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
        result = await app.generations.generate(user, session, inp, _progress_sink(ctx))
        return generation_result(result, user, app.images, seed_given=inp.seed is not None)

    @domain_errors
    async def generate_image(
        ctx: Context,
        prompt: Prompt,
        template: Annotated[str | None, Field(description="A template name (list_templates) to render with the prompt.")] = None,
        template_args: Annotated[dict[str, Any] | None, Field(description="Values for the template's {placeholders}; needs template.")] = None,
        reference: Annotated[str | None, Field(max_length=500, description="An earlier image to build on: image_id, or words like 'the previous one', 'my last spaceship image'.")] = None,
        input_image_url: Annotated[str | None, Field(max_length=2048, description="https URL of a public image to start from.")] = None,
        provider: ProviderName = None,
        model: ModelName = None,
        width: Side = None,
        height: Side = None,
        aspect_ratio: Annotated[AspectRatio | None, Field(description="Used unless width and height are both given.")] = None,
        negative_prompt: Annotated[str | None, Field(max_length=MAX_PROMPT, description="What to keep out of the image.")] = None,
        seed: Annotated[int | None, Field(ge=0, le=4294967295, description="For reproducible results (models that take seeds).")] = None,
        apply_memory: Annotated[bool, Field(description="Add profile defaults and remembered styles.")] = True,
        dry_run: Annotated[bool, Field(description="Only report what would be sent; nothing generated or stored.")] = False,
        incognito: Annotated[bool, Field(description="Remember and index nothing from this call.")] = False,
        request_id: RequestId = None,
        wait: Annotated[bool, Field(description="false: return the running job_id at once.")] = True,
    ) -> Annotated[CallToolResult, GenerateResult]:
        """Generate an image from a plain prompt. Remembered styles, profile defaults, a template and a
        reference are added first; the text says what was added and the image_id to use next."""
        return await run(ctx, GenerationInput(
            prompt=prompt, template=template, template_args=template_args or {}, reference=reference,
            input_image_url=input_image_url, provider=provider, model=model, width=width, height=height,
            aspect_ratio=aspect_ratio, negative_prompt=negative_prompt, seed=seed, apply_memory=apply_memory,
            dry_run=dry_run, incognito=incognito, request_id=request_id, wait=wait,
        ))

    @domain_errors
    async def edit_image(
        ctx: Context,
        image: Annotated[str, Field(min_length=1, max_length=500, description="image_id, or words like 'the previous one'.")],
        instruction: Annotated[str, Field(min_length=1, max_length=MAX_PROMPT, description="What to change.")],
        mask_image: Annotated[str | None, Field(max_length=500, description="image_id of a mask: white areas are repainted (models with mask support).")] = None,
        strength: Annotated[float | None, Field(ge=0, le=1, description="How far the result may move from the source.")] = None,
        provider: ProviderName = None,
        model: ModelName = None,
        request_id: RequestId = None,
    ) -> Annotated[CallToolResult, GenerateResult]:
        """Edit an earlier image; the result is a new image (parent_id: the source, which is kept)."""
        return await run(ctx, GenerationInput(
            prompt=instruction, kind="edit", reference=image, mask_image=mask_image, strength=strength,
            provider=provider, model=model, request_id=request_id))

    @domain_errors
    async def get_usage(
        period: Annotated[Literal["day", "month"], Field(description="day (since 00:00 UTC) or month.")] = "day",
    ) -> Annotated[CallToolResult, Usage]:
        """Generations and estimated cost per provider, and the daily budget left."""
        out = Usage.model_validate(app.usage.summary(current_user(app), period))
        lines = [f"Usage this {out.period} (since {out.since}):"]
        lines += [f"- {p.provider}: {plural(p.generations, 'generation')}, ${p.cost_usd:.3f}" for p in out.providers] or [
            "- no generations yet"]
        lines.append(f"Total ${out.total_cost_usd:.3f}; " + (
            f"${out.budget_left_usd:.2f} left of today's ${out.daily_budget_usd:.2f} budget"
            if out.daily_budget_usd is not None and out.budget_left_usd is not None
            else "no daily budget set (update_profile daily_budget_usd sets one)"))
        return structured(out, "\n".join(lines))

    @domain_errors
    async def get_generation(
        job_id: Annotated[str, Field(min_length=1, max_length=64, description="From generate_image or edit_image.")],
    ) -> Annotated[CallToolResult, GenerateResult]:
        """A generation job's status, progress and result (or error)."""
        user = current_user(app)
        return generation_result(app.generations.result(user, job_id), user, app.images)

    @domain_errors
    async def list_recent_generations(
        limit: Annotated[int, Field(ge=1, le=100, description="1..100.")] = 10,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, RecentGenerations]:
        """This user's generations, newest first, with job_id and image_id."""
        rows, nxt = app.jobs.recent(current_user(app), limit, cursor)
        items = [
            GenerationSummary(job_id=r["id"], image_id=r["image_id"], status=r["status"], created_at=r["created_at"],
                              provider=r["provider"], prompt=_job_prompt(r),
                              uri=image_uri(r["image_id"]) if r["image_id"] else None)
            for r in rows
        ]

        def build(n: int, width: int | None) -> tuple[str, dict[str, Any]]:
            shown = [g.model_copy(update={"prompt": clip(g.prompt, width)}) for g in items[:n]]
            more = nxt if n == len(items) else encode_cursor(rows[n - 1]["created_at"], rows[n - 1]["id"])
            data = RecentGenerations(generations=shown, next_cursor=more).model_dump(mode="json")
            if not shown:
                return "No generations yet." if not cursor else "No more generations.", data
            lines = [f"{plural(len(shown), 'generation')}, newest first:"]
            lines += [f"- {_ids(g)} · {g.status} · {g.created_at[:16].replace('T', ' ')} · {one_line(g.prompt, width)}"
                      for g in shown]
            longest = max(len(g.prompt) for g in items[:n])
            lines.append(cut_note(width, longest, "get_generation(job_id) or image://<image_id>/metadata has the "
                                  "full prompt").strip())
            if more:
                lines.append(f"More: call list_recent_generations with cursor \"{more}\".")
            return "\n".join(line for line in lines if line), data

        text, data = fit_list(len(items), build)
        return structured(data, text)

    @domain_errors
    async def delete_image(
        image_id: Annotated[str, Field(min_length=1, max_length=64, description="The image_id to delete.")],
    ) -> Annotated[CallToolResult, DeleteResult]:
        """Delete an image: file, metadata and search entry. Cannot be undone."""
        user = current_user(app)
        app.images.delete(user, image_id)
        app.sessions.forget_image(user, image_id)
        return structured(DeleteResult(deleted=True, id=image_id),
                          f"Deleted image_id: {image_id} (its file, metadata and search entry).")

    @domain_errors
    async def list_providers() -> Annotated[CallToolResult, ProviderList]:
        """Image providers: configured or not, models, capabilities and cost per image."""
        out = ProviderList(providers=[describe_provider(info) for info in app.providers.infos()])
        return structured(out, "\n".join(_provider_text(info) for info in app.providers.infos()))

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


def _ids(g: GenerationSummary) -> str:
    return (f"image_id: {g.image_id} (job_id: {g.job_id})" if g.image_id
            else f"job_id: {g.job_id} (no image)")


def _provider_text(info: Any) -> str:
    head = f"{info.name}: " + ("configured" if info.configured else f"not configured ({info.setup_hint or 'see docs'})")
    if info.description:
        head += f". {info.description}"
    lines = [head]
    for m in info.models:
        can = [label for label, ok in (("text-to-image", m.text_to_image), ("image-to-image", m.image_to_image),
                                       ("mask edits", m.mask), ("negative prompt", m.negative_prompt),
                                       ("seed", m.seed)) if ok]
        sizes = (", ".join(f"{w}x{h}" for w, h in m.sizes) if m.sizes
                 else f"any size {m.min_side}..{m.max_side} px")
        ratios = f"; aspect ratios {', '.join(m.aspect_ratios)}" if m.aspect_ratios else ""
        cost = "free" if m.cost_usd <= 0 else f"${m.cost_usd:.3f} per image"
        default = " (default)" if m.name == info.default_model else ""
        lines.append(f"- model {m.name}{default}: {cost}; {', '.join(can)}; sizes: {sizes}{ratios}")
    return "\n".join(lines)


def _job_prompt(row: JobRow) -> str:
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
