"""Memory, profile and image search over MCP: tools and the memory://all and profile://me resources."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from context_server.domain.memory.rules import Memory
from context_server.domain.paging import encode_cursor
from context_server.domain.search.relevance import RELEVANCE_FLOOR
from context_server.models import AspectRatio, DeleteResult, ImageHit, image_uri
from context_server.server.auth import current_user, session_key
from context_server.server.generation import READ, domain_errors
from context_server.server.results import clip, cut_note, fit_list, one_line, plural, structured, word

if TYPE_CHECKING:
    from context_server.app import App

__all__ = ["register_memory"]

Kind = Literal["style", "preference", "fact", "note"]
MemoryId = Annotated[str, Field(min_length=1, max_length=64, description="The memory_id returned by save_memory or a listing.")]
AppliesTo = Annotated[str | None, Field(min_length=1, max_length=200, description=(
    'Style memories only: when to apply it, "always" or a subject phrase such as "logos" or "portraits". '
    "Inferred from the content when not given."))]
Tags = Annotated[list[Annotated[str, Field(max_length=64)]] | None, Field(max_length=20, description="Up to 20 short tags.")]


class SavedMemory(BaseModel):
    memory_id: str
    kind: str
    scope: str
    merged_into: str | None = Field(None, description="Set when the content repeated an existing memory: the id it was merged into.")
    applies_to: str | None = Field(None, description='Styles only: "always" or the subject it is for ("logos"); null for other kinds.')


class MemoryPage(BaseModel):
    memories: list[Memory]
    next_cursor: str | None = None


class MemoryHits(BaseModel):
    memories: list[Memory]


class Profile(BaseModel):
    default_provider: str | None = None
    default_model: str | None = None
    default_aspect_ratio: str | None = None
    default_negative_prompt: str | None = None
    style_strength: Literal["off", "light", "strong"] = "light"
    daily_budget_usd: float | None = None


class ImageHits(BaseModel):
    images: list[ImageHit]


def _out(memory: Memory) -> Memory:
    """The memory as the tools show it: the score to 4 decimals."""
    return memory if memory.score is None else memory.model_copy(update={"score": round(memory.score, 4)})


def _memory_line(m: Memory, width: int | None) -> str:
    facts = [f"memory_id: {m.memory_id}", m.kind + (" (pinned)" if m.pinned else "")]
    if m.scope == "session":
        facts.append("this conversation only")
    applies_to = getattr(m, "applies_to", None)
    if applies_to:
        facts.append(f"applies to: {applies_to}")
    if m.score is not None:
        facts.append(f"score {m.score:.2f}")
    if m.tags:
        facts.append("tags: " + ", ".join(m.tags))
    return "- " + " · ".join(facts) + f" · {one_line(m.content, width)}"


def _memory_list(memories: list[Memory], head: str, empty: str, make: Callable[[list[Memory], str | None], BaseModel],
                 cursor_of: Callable[[int], str | None], more_hint: str) -> tuple[str, dict[str, Any]]:
    def build(n: int, width: int | None) -> tuple[str, dict[str, Any]]:
        shown = [m.model_copy(update={"content": clip(m.content, width)}) for m in memories[:n]]
        more = cursor_of(n)
        data = make(shown, more).model_dump(mode="json")
        if not shown:
            return empty, data
        lines = [head.format(n=plural(len(shown), "memory").replace("memorys", "memories")), *(_memory_line(m, width) for m in shown)]
        note = cut_note(width, max(len(m.content) for m in memories[:n]), "the memory://all resource has whole texts")
        if note:
            lines.append(note.strip())
        if more:
            lines.append(more_hint.format(cursor=more))
        return "\n".join(lines), data

    return fit_list(len(memories), build, widths=(None, 500, 200, 100, 50))


def _when_it_applies(kind: str, scope: str, pinned: bool, applies_to: str | None, placement: str | None) -> str:
    """One line the assistant can repeat: when this memory will change a prompt."""
    where = " in this conversation" if scope == "session" else ""
    if kind != "style":
        return (f"A {kind} is not added to prompts (only styles are); it is kept for you to look up with "
                "search_memories or get_all_memories.")
    target = "the negative prompt (things to avoid) of " if placement == "negative" else ""
    if pinned:
        return f"It will be added to {target}every generation{where} (pinned)."
    if applies_to == "always":
        return (f"It will be added to {target}every generation{where} (update_memory applies_to='<subject>' "
                "narrows it).")
    if applies_to:
        return (f"It will be added to {target}generations{where} about {applies_to} (update_memory "
                "applies_to='always' or another subject changes that).")
    return f"It will be added to {target}generations{where} whose prompt is about what it describes."


def register_memory(server: MCPServer, app: App) -> None:
    def session_id(ctx: Context | None) -> str:
        return app.sessions.touch(current_user(app), session_key(ctx)).id

    @domain_errors
    async def save_memory(
        ctx: Context,
        content: Annotated[str, Field(min_length=1, max_length=2000, description="What to remember, in the user's words, e.g. 'I like muted watercolour'.")],
        kind: Annotated[Kind, Field(description="style: added to matching generations; preference, fact, note: kept only.")] = "note",
        scope: Annotated[Literal["long_term", "session"], Field(description="long_term, or session (this conversation only).")] = "long_term",
        tags: Tags = None,
        pinned: Annotated[bool, Field(description="A pinned style is added to every generation.")] = False,
        replaces: Annotated[str | None, Field(max_length=64, description="memory_id this one supersedes (deleted; its pin is kept).")] = None,
        applies_to: AppliesTo = None,
    ) -> Annotated[CallToolResult, SavedMemory]:
        """Remember something about the user; a near-duplicate is merged into the existing memory."""
        user, sid = current_user(app), session_id(ctx)
        old = app.memories.get(user, replaces) if replaces else None
        saved = await anyio.to_thread.run_sync(lambda: app.memories.save(
            user, content, kind=kind, scope=scope, tags=tags, pinned=pinned, replaces=replaces, session_id=sid,
            applies_to=applies_to))
        out = SavedMemory(memory_id=saved.memory_id, kind=saved.kind, scope=saved.scope, merged_into=saved.merged_into,
                          applies_to=saved.applies_to)
        memory = app.memories.get(user, saved.memory_id)
        if out.merged_into:
            text = (f"Already remembered: merged into memory_id: {out.merged_into} (same meaning as an existing "
                    f"{out.kind}: \"{clip(memory.content, 300)}\"); nothing new was stored.")
        else:
            text = f"Saved memory_id: {out.memory_id} ({out.kind}, {out.scope.replace('_', '-')})."
        if old is not None:
            text += f" Replaced memory_id: {old.memory_id} (deleted)"
            text += ("; it was pinned, and the pin was kept." if old.pinned else ".")
        text += " " + _when_it_applies(out.kind, out.scope, memory.pinned, saved.applies_to, saved.placement)
        return structured(out, text)

    @domain_errors
    async def get_all_memories(
        ctx: Context,
        kind: Annotated[Kind | None, Field(description="Only this kind.")] = None,
        scope: Annotated[Literal["long_term", "session"] | None, Field(description="Only this scope; default both.")] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="1..200.")] = 50,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page.")] = None,
    ) -> Annotated[CallToolResult, MemoryPage]:
        """Everything remembered about the user, newest first, paged."""
        page, nxt = app.memories.list(current_user(app), kind=kind, scope=scope, limit=limit, cursor=cursor,
                                    session_id=session_id(ctx))
        memories = [_out(m) for m in page]

        def cursor_of(n: int) -> str | None:
            return nxt if n == len(page) else encode_cursor(page[n - 1].created_at, page[n - 1].memory_id)

        text, data = _memory_list(
            memories, "{n}, newest first:", "Nothing is remembered yet." if not cursor else "No more memories.",
            lambda shown, more: MemoryPage(memories=shown, next_cursor=more), cursor_of,
            "More: call get_all_memories with cursor \"{cursor}\".")
        return structured(data, text)

    @domain_errors
    async def search_memories(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, max_length=2000, description="What to look for, by meaning.")],
        limit: Annotated[int, Field(ge=1, le=50, description="1..50.")] = 5,
        kind: Annotated[Kind | None, Field(description="Only this kind.")] = None,
    ) -> Annotated[CallToolResult, MemoryHits]:
        """Memories ranked by meaning, with scores; unrelated ones are left out."""
        user, sid = current_user(app), session_id(ctx)
        found = await anyio.to_thread.run_sync(lambda: app.memories.search(user, query, limit=limit, kind=kind,
                                                                          session_id=sid))
        close = [_out(m) for m in found if (m.score or 0.0) >= RELEVANCE_FLOOR]
        text, data = _memory_list(
            close, "{n}, best match first (score 0..1):",
            _nothing_close("memory", query, [m.score or 0.0 for m in found]),
            lambda shown, more: MemoryHits(memories=shown), lambda n: None, "")
        return structured(data, text)

    @domain_errors
    async def update_memory(
        memory_id: MemoryId,
        content: Annotated[str | None, Field(min_length=1, max_length=2000, description="New text.")] = None,
        kind: Annotated[Kind | None, Field(description="New kind.")] = None,
        tags: Tags = None,
        pinned: Annotated[bool | None, Field(description="Pin or unpin.")] = None,
        applies_to: AppliesTo = None,
    ) -> Annotated[CallToolResult, Memory]:
        """Change a memory's text, kind, tags, pinning, or when a style applies (applies_to)."""
        user = current_user(app)
        updated = await anyio.to_thread.run_sync(lambda: app.memories.update(
            user, memory_id, content=content, kind=kind, tags=tags, pinned=pinned, applies_to=applies_to))
        out = _out(updated)
        text = f"Updated memory_id: {out.memory_id}:\n{_memory_line(out, None)}\n" + _when_it_applies(
            out.kind, out.scope, out.pinned, updated.applies_to, updated.placement)
        return structured(out, text)

    @domain_errors
    async def delete_memory(memory_id: MemoryId) -> Annotated[CallToolResult, DeleteResult]:
        """Forget a memory (database and search index)."""
        user = current_user(app)
        await anyio.to_thread.run_sync(app.memories.delete, user, memory_id)
        return structured(DeleteResult(deleted=True, id=memory_id), f"Forgot memory_id: {memory_id}.")

    @domain_errors
    async def get_profile() -> Annotated[CallToolResult, Profile]:
        """The profile defaults filled into generations that leave them out."""
        out = Profile.model_validate(app.profiles.get(current_user(app)))
        return structured(out, "Profile:\n" + _profile_lines(out))

    @domain_errors
    async def update_profile(
        default_provider: Annotated[str | None, Field(description="Provider when a call names none ('' clears).")] = None,
        default_model: Annotated[str | None, Field(max_length=200, description="Model of the default provider ('' clears).")] = None,
        default_aspect_ratio: Annotated[Literal[AspectRatio, ""] | None, Field(description="When a call gives no size ('' clears).")] = None,
        default_negative_prompt: Annotated[str | None, Field(max_length=1000, description="When a call gives none ('' clears).")] = None,
        style_strength: Annotated[Literal["off", "light", "strong"] | None, Field(description="Remembered styles added: off, light (≤2) or strong (≤5).")] = None,
        daily_budget_usd: Annotated[float | None, Field(ge=0, description="Refuse paid generations past this many dollars a day (UTC).")] = None,
    ) -> Annotated[CallToolResult, Profile]:
        """Set profile defaults; fields left out are unchanged, '' clears one."""
        user = current_user(app)
        changes: dict[str, Any] = {k: v for k, v in {
            "default_provider": default_provider, "default_model": default_model,
            "default_aspect_ratio": default_aspect_ratio, "default_negative_prompt": default_negative_prompt,
            "style_strength": style_strength, "daily_budget_usd": daily_budget_usd}.items() if v is not None}
        before = Profile.model_validate(app.profiles.get(user))
        out = Profile.model_validate(app.profiles.update(user, changes) if changes else app.profiles.get(user))
        diff = [f"{k}: {word(getattr(before, k))} → {word(v)}" for k, v in out.model_dump().items()
                if getattr(before, k) != v]
        if not changes:
            head = "Nothing changed: no field was given. Current profile:"
        elif not diff:
            head = "Nothing changed: the profile already had those values. Current profile:"
        else:
            head = "Profile updated: " + "; ".join(diff) + ". Now:"
        return structured(out, f"{head}\n{_profile_lines(out)}")

    @domain_errors
    async def search_images(
        query: Annotated[str, Field(min_length=1, max_length=2000, description="What the image shows.")],
        limit: Annotated[int, Field(ge=1, le=50, description="1..50.")] = 5,
    ) -> Annotated[CallToolResult, ImageHits]:
        """The user's images ranked by the meaning of their prompts, with scores; unrelated ones left out."""
        user = current_user(app)
        rows = await anyio.to_thread.run_sync(app.images.search, user, query, limit)
        hits = [ImageHit(image_id=r["id"], prompt=r["prompt"], score=r["score"], created_at=r["created_at"],
                         uri=image_uri(r["id"])) for r in rows if r["score"] >= RELEVANCE_FLOOR]

        def build(n: int, width: int | None) -> tuple[str, dict[str, Any]]:
            shown = [h.model_copy(update={"prompt": clip(h.prompt, width)}) for h in hits[:n]]
            data = ImageHits(images=shown).model_dump(mode="json")
            if not shown:
                return _nothing_close("image", query, [r["score"] for r in rows]), data
            lines = [f"{plural(len(shown), 'image')}, best match first (score 0..1):"]
            lines += [f"- image_id: {h.image_id} · score {h.score:.2f} · {h.created_at[:10]} · {one_line(h.prompt, width)}"
                      for h in shown]
            note = cut_note(width, max(len(h.prompt) for h in hits[:n]),
                            "image://<image_id>/metadata has the full prompt")
            if note:
                lines.append(note.strip())
            if n < len(hits):
                lines.append(f"{len(hits) - n} more matches left out to keep this short; ask with a smaller limit.")
            lines.append("Use an image_id as generate_image's reference or edit_image's image.")
            return "\n".join(lines), data

        text, data = fit_list(len(hits), build)
        return structured(data, text)

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
        page, _ = app.memories.list(current_user(app), scope="long_term", limit=200)
        return json.dumps([_out(m).model_dump() for m in page], indent=2)

    @server.resource("profile://me", name="profile", title="Profile", mime_type="application/json",
                     description="This user's profile defaults.")
    def profile_me() -> str:
        return json.dumps(app.profiles.get(current_user(app)), indent=2)


def _profile_lines(profile: Profile) -> str:
    fallback = {"default_provider": "not set (the server default)", "default_model": "not set (the provider's default)",
                "daily_budget_usd": "not set (no limit)"}
    return "\n".join(f"- {k}: {word(v, fallback.get(k, 'not set'))}" for k, v in profile.model_dump().items())


def _nothing_close(what: str, query: str, scores: list[float]) -> str:
    best = f"the best match scored {max(scores):.2f}, and " if scores else ""
    return (f"No {what} is close to {clip(query, 80)!r}: {best}results under {RELEVANCE_FLOOR:.2f} are left out as "
            "unrelated." + (" list_recent_generations lists images by date." if what == "image" else
                            " get_all_memories lists everything remembered."))
