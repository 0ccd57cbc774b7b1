"""Memory, profile and image search over MCP: tools and the memory://all and profile://me resources."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from context_server.models import ImageHit
from context_server.server.auth import current_user, session_key
from context_server.server.generation import READ, domain_errors
from context_server.server.results import structured

if TYPE_CHECKING:
    from context_server.app import App
    from context_server.domain.memory.service import Memory

__all__ = ["register_memory"]

Kind = Literal["style", "preference", "fact", "note"]
MemoryId = Annotated[str, Field(min_length=1, max_length=64, description="The memory_id returned by save_memory or a listing.")]
AppliesTo = Annotated[str | None, Field(min_length=1, max_length=200, description=(
    'Style memories only: when to apply it, "always" or a subject phrase such as "logos" or "portraits". '
    "Inferred from the content when not given."))]
Tags = Annotated[list[Annotated[str, Field(max_length=64)]] | None, Field(max_length=20, description="Up to 20 short tags.")]


class MemoryOut(BaseModel):
    memory_id: str
    content: str
    kind: str
    scope: str
    tags: list[str]
    pinned: bool
    created_at: str
    updated_at: str
    use_count: int
    last_used_at: str | None = None
    score: float | None = None
    applies_to: str | None = Field(None, description='Styles only: "always" or the subject it is for ("logos").')


class SavedMemory(BaseModel):
    memory_id: str
    kind: str
    scope: str
    merged_into: str | None = Field(None, description="Set when the content repeated an existing memory: the id it was merged into.")
    applies_to: str | None = Field(None, description='Styles only: "always" or the subject it is for ("logos"); null for other kinds.')


class MemoryPage(BaseModel):
    memories: list[MemoryOut]
    next_cursor: str | None = None


class MemoryHits(BaseModel):
    memories: list[MemoryOut]


class Deleted(BaseModel):
    deleted: bool
    id: str


class Profile(BaseModel):
    default_provider: str | None = None
    default_model: str | None = None
    default_aspect_ratio: str | None = None
    default_negative_prompt: str | None = None
    style_strength: Literal["off", "light", "strong"] = "light"
    daily_budget_usd: float | None = None


class ImageHits(BaseModel):
    images: list[ImageHit]


def _out(memory: Memory) -> MemoryOut:
    return MemoryOut(memory_id=memory.memory_id, content=memory.content, kind=memory.kind, scope=memory.scope,
                     tags=memory.tags, pinned=memory.pinned, created_at=memory.created_at,
                     updated_at=memory.updated_at, use_count=memory.use_count, last_used_at=memory.last_used_at,
                     score=None if memory.score is None else round(memory.score, 4), applies_to=memory.applies_to)


def _when_applies(kind: str, applies_to: str | None, placement: str | None) -> str:
    """One line the assistant can repeat: when this memory will change a prompt."""
    if kind != "style" or applies_to is None:
        return f"As a {kind} it is never put in prompts; it is there to be looked up."
    where = "the negative prompt (things to avoid)" if placement == "negative" else "the prompt"
    if applies_to == "always":
        return f"It will be added to {where} of every image (update_memory applies_to='<subject>' narrows it)."
    return (f"It will be added to {where} of images about {applies_to} (update_memory applies_to='always' "
            "or another subject changes that).")


def _lines(memories: list[MemoryOut]) -> str:
    return "\n".join(f"[{m.memory_id}] ({m.kind}{', pinned' if m.pinned else ''}) {m.content}"
                     for m in memories) or "No memories."


def register_memory(server: MCPServer, app: App) -> None:
    def session_id(ctx: Context | None) -> str:
        return app.sessions.touch(current_user(app), session_key(ctx)).id

    @domain_errors
    async def save_memory(
        ctx: Context,
        content: Annotated[str, Field(min_length=1, max_length=2000, description="What to remember, in the user's words (1..2000 characters), e.g. 'I like muted watercolour'.")],
        kind: Annotated[Kind, Field(description="style (applied to matching generations), preference, fact or note.")] = "note",
        scope: Annotated[Literal["long_term", "session"], Field(description="long_term (kept) or session (this connection only).")] = "long_term",
        tags: Tags = None,
        pinned: Annotated[bool, Field(description="A pinned style applies to every generation, whatever the prompt.")] = False,
        replaces: Annotated[str | None, Field(max_length=64, description="memory_id of a memory this one supersedes (it is removed).")] = None,
        applies_to: AppliesTo = None,
    ) -> Annotated[CallToolResult, SavedMemory]:
        """Remember something about the user. A near-duplicate of an existing memory is merged into it
        (merged_into says which) rather than stored twice."""
        user, sid = current_user(app), session_id(ctx)
        saved = await anyio.to_thread.run_sync(lambda: app.memory.save(
            user, content, kind=kind, scope=scope, tags=tags, pinned=pinned, replaces=replaces, session_id=sid,
            applies_to=applies_to))
        out = SavedMemory(memory_id=saved.memory_id, kind=saved.kind, scope=saved.scope, merged_into=saved.merged_into,
                          applies_to=saved.applies_to)
        text = (f"Already remembered (merged into {out.merged_into})." if out.merged_into
                else f"Remembered as {out.memory_id} ({out.kind}, {out.scope}).")
        return structured(out, f"{text} {_when_applies(saved.kind, saved.applies_to, saved.placement)}")

    @domain_errors
    async def get_all_memories(
        ctx: Context,
        kind: Annotated[Kind | None, Field(description="Only this kind.")] = None,
        scope: Annotated[Literal["long_term", "session"] | None, Field(description="Only this scope; default both (session: this connection's).")] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="Page size (1..200).")] = 50,
        cursor: Annotated[str | None, Field(description="next_cursor from the previous page.")] = None,
    ) -> Annotated[CallToolResult, MemoryPage]:
        """Everything remembered about the user, newest first, paged."""
        page, nxt = app.memory.list(current_user(app), kind=kind, scope=scope, limit=limit, cursor=cursor,
                                    session_id=session_id(ctx))
        out = MemoryPage(memories=[_out(m) for m in page], next_cursor=nxt)
        return structured(out, _lines(out.memories))

    @domain_errors
    async def search_memories(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, max_length=2000, description="What to look for, by meaning.")],
        limit: Annotated[int, Field(ge=1, le=50, description="How many (1..50).")] = 5,
        kind: Annotated[Kind | None, Field(description="Only this kind.")] = None,
    ) -> Annotated[CallToolResult, MemoryHits]:
        """Memories ranked by meaning, each with a score (0..1)."""
        user, sid = current_user(app), session_id(ctx)
        found = await anyio.to_thread.run_sync(lambda: app.memory.search(user, query, limit=limit, kind=kind,
                                                                          session_id=sid))
        out = MemoryHits(memories=[_out(m) for m in found])
        return structured(out, _lines(out.memories))

    @domain_errors
    async def update_memory(
        memory_id: MemoryId,
        content: Annotated[str | None, Field(min_length=1, max_length=2000, description="New text.")] = None,
        kind: Annotated[Kind | None, Field(description="New kind.")] = None,
        tags: Tags = None,
        pinned: Annotated[bool | None, Field(description="Pin or unpin.")] = None,
        applies_to: AppliesTo = None,
    ) -> Annotated[CallToolResult, MemoryOut]:
        """Change a memory's text, kind, tags, pinning, or when a style applies (applies_to)."""
        user = current_user(app)
        updated = await anyio.to_thread.run_sync(lambda: app.memory.update(
            user, memory_id, content=content, kind=kind, tags=tags, pinned=pinned, applies_to=applies_to))
        out = _out(updated)
        when = _when_applies(updated.kind, updated.applies_to, updated.placement)
        return structured(out, f"Updated {out.memory_id}: {out.content}. {when}")

    @domain_errors
    async def delete_memory(memory_id: MemoryId) -> Annotated[CallToolResult, Deleted]:
        """Forget a memory (it is removed from the database and the search index)."""
        user = current_user(app)
        await anyio.to_thread.run_sync(app.memory.delete, user, memory_id)
        return structured(Deleted(deleted=True, id=memory_id), f"Forgot {memory_id}.")

    @domain_errors
    async def get_profile() -> Annotated[CallToolResult, Profile]:
        """The user's profile: defaults filled into generations that leave them unspecified."""
        out = Profile.model_validate(app.profiles.get(current_user(app)))
        return structured(out, "\n".join(f"{k}: {v}" for k, v in out.model_dump().items()))

    @domain_errors
    async def update_profile(
        default_provider: Annotated[str | None, Field(description="Provider to use when a call names none ('' clears).")] = None,
        default_model: Annotated[str | None, Field(max_length=200, description="Model to use with the default provider ('' clears).")] = None,
        default_aspect_ratio: Annotated[Literal["1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4", ""] | None, Field(description="Aspect ratio when a call gives no size ('' clears).")] = None,
        default_negative_prompt: Annotated[str | None, Field(max_length=1000, description="Negative prompt added when a call gives none ('' clears).")] = None,
        style_strength: Annotated[Literal["off", "light", "strong"] | None, Field(description="How much remembered style is added: off, light (≤2 relevant styles) or strong (≤5).")] = None,
        daily_budget_usd: Annotated[float | None, Field(ge=0, description="Refuse paid generations past this many dollars a day (UTC); -1 is not allowed, use a large number for no limit.")] = None,
    ) -> Annotated[CallToolResult, Profile]:
        """Set profile defaults; fields left out are unchanged, an empty string clears a field."""
        changes: dict[str, Any] = {k: v for k, v in {
            "default_provider": default_provider, "default_model": default_model,
            "default_aspect_ratio": default_aspect_ratio, "default_negative_prompt": default_negative_prompt,
            "style_strength": style_strength, "daily_budget_usd": daily_budget_usd}.items() if v is not None}
        out = Profile.model_validate(app.profiles.update(current_user(app), changes))
        return structured(out, "Profile updated: " + ", ".join(f"{k}={v}" for k, v in out.model_dump().items()))

    @domain_errors
    async def search_images(
        query: Annotated[str, Field(min_length=1, max_length=2000, description="What the image shows, in words.")],
        limit: Annotated[int, Field(ge=1, le=50, description="How many (1..50).")] = 5,
    ) -> Annotated[CallToolResult, ImageHits]:
        """The user's images ranked by the meaning of their prompts (newer first among equals)."""
        user = current_user(app)
        rows = await anyio.to_thread.run_sync(app.search_images, user, query, limit)
        out = ImageHits(images=[ImageHit(image_id=r["id"], prompt=r["prompt"], score=r["score"],
                                         created_at=r["created_at"], uri=f"image://{r['id']}/view") for r in rows])
        return structured(out, "\n".join(f"{h.image_id} ({h.score:.2f}) {h.prompt}" for h in out.images)
                          or "No matching images.")

    write = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                            open_world_hint=False)
    server.add_tool(save_memory, title="Save memory", annotations=write)
    server.add_tool(get_all_memories, title="List memories", annotations=READ)
    server.add_tool(search_memories, title="Search memories", annotations=READ)
    server.add_tool(update_memory, title="Update memory", annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False))
    server.add_tool(delete_memory, title="Delete memory", annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False))
    server.add_tool(get_profile, title="Get profile", annotations=READ)
    server.add_tool(update_profile, title="Update profile", annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    server.add_tool(search_images, title="Search images", annotations=READ)

    @server.resource("memory://all", name="memories", title="Memories", mime_type="application/json",
                     description="Everything remembered about this user (long-term), newest first.")
    def memory_all() -> str:
        page, _ = app.memory.list(current_user(app), scope="long_term", limit=200)
        return json.dumps([_out(m).model_dump() for m in page], indent=2)

    @server.resource("profile://me", name="profile", title="Profile", mime_type="application/json",
                     description="This user's profile defaults.")
    def profile_me() -> str:
        return json.dumps(app.profiles.get(current_user(app)), indent=2)
