"""The template library over MCP: tools, resources, prompts (per user) and completions."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolResult,
    Completion,
    CompletionArgument,
    CompletionContext,
    GetPromptResult,
    Prompt,
    PromptArgument,
    PromptMessage,
    PromptReference,
    ResourceTemplateReference,
    TextContent,
    ToolAnnotations,
)
from pydantic import BaseModel, Field

from context_server.domain.prompt_guide import prompt_guide
from context_server.errors import ContextServerError
from context_server.server.auth import current_user
from context_server.server.generation import READ, domain_errors
from context_server.server.results import clip, structured

if TYPE_CHECKING:
    from context_server.app import App
    from context_server.domain.templates.library import Template

__all__ = ["list_user_prompts", "notify_prompts_changed", "register_templates", "render_user_prompt"]

log = logging.getLogger(__name__)

Name = Annotated[str, Field(min_length=1, max_length=64, description="Template name: a slug of a-z, 0-9 and '-' (1..64).")]


class TemplateArgumentOut(BaseModel):
    name: str
    description: str = ""
    required: bool | None = Field(default=None, description="Default: true unless a default is given.")
    default: str | None = None
    examples: list[str] = Field(default_factory=list)


class TemplateOut(BaseModel):
    name: str
    description: str
    body: str
    arguments: list[TemplateArgumentOut]
    version: int
    source: str
    versions: list[int] = Field(default_factory=list)
    created_at: str | None = None
    overrides_builtin: bool = False
    unchanged: bool = False


class TemplateList(BaseModel):
    templates: list[TemplateOut]


class TemplateDeleted(BaseModel):
    deleted: str
    restored_builtin: TemplateOut | None = None


def _out(template: Template) -> TemplateOut:
    return TemplateOut.model_validate({**template.to_dict(), "unchanged": template.unchanged})


def _arguments_text(t: TemplateOut) -> str:
    if not t.arguments:
        return "no arguments"
    return ", ".join(a.name + (" (required)" if a.required else f" (optional, default {clip(a.default or '', 60)!r})")
                     for a in t.arguments)


def _template_text(t: TemplateOut) -> str:
    kept = ", ".join(f"v{v}" for v in t.versions) or f"v{t.version}"
    lines = [f"Template {t.name} v{t.version} ({t.source}{', overrides the built-in' if t.overrides_builtin else ''}; "
             f"versions kept: {kept}): {t.description or 'no description'}",
             f"Arguments: {_arguments_text(t)}"]
    lines += [f"- {a.name}: {a.description}" + (f" (e.g. {', '.join(a.examples[:3])})" if a.examples else "")
              for a in t.arguments if a.description or a.examples]
    lines.append(f"Body:\n{t.body}")
    lines.append(f"Use: generate_image with template \"{t.name}\" and the prompt as its subject; other values "
                 "in template_args.")
    return "\n".join(lines)


async def notify_prompts_changed(ctx: Context | None) -> None:
    """Tell this client the prompt list changed, on whichever protocol era it speaks."""
    if ctx is None:
        return
    for send in (ctx.notify_prompts_changed, ctx.session.send_prompt_list_changed):
        try:
            await send()
        except Exception as exc:  # a transport that cannot notify must not fail the edit itself
            log.debug("prompt list-changed notification not sent: %r", exc)


def list_user_prompts(app: App) -> list[Prompt]:
    return [
        Prompt(name=t.name, title=t.name.replace("-", " ").capitalize(), description=t.description,
               arguments=[PromptArgument(name=a.name, description=a.description, required=a.required)
                          for a in t.arguments])
        for t in app.templates.list(current_user(app))
    ]


def render_user_prompt(app: App, name: str, arguments: dict[str, Any] | None) -> GetPromptResult:
    user = current_user(app)
    try:
        template = app.templates.get(user, name)
        text = app.templates.render(user, name, arguments or {})
    except ContextServerError as exc:
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None
    instruction = (f"Generate an image with the generate_image tool using this prompt "
                   f"(template {template.name} v{template.version}):\n\n{text}")
    return GetPromptResult(description=template.description,
                           messages=[PromptMessage(role="user", content=TextContent(text=instruction))])


def register_templates(server: MCPServer, app: App) -> None:
    @domain_errors
    async def list_templates() -> Annotated[CallToolResult, TemplateList]:
        """Prompt templates: built-ins and the user's own (which override a built-in of the same name)."""
        out = TemplateList(templates=[_out(t) for t in app.templates.list(current_user(app))])
        lines = [f"{len(out.templates)} templates (get_template shows a body):"]
        lines += [f"- {t.name} v{t.version} ({t.source}): {clip(t.description, 200) or 'no description.'} "
                  f"Arguments: {_arguments_text(t)}." for t in out.templates]
        return structured(out, "\n".join(lines))

    @domain_errors
    async def get_template(
        name: Name,
        version: Annotated[int | None, Field(ge=1, description="A kept version; default the latest.")] = None,
    ) -> Annotated[CallToolResult, TemplateOut]:
        """One template: body, arguments and kept versions."""
        out = _out(app.templates.get(current_user(app), name, version))
        return structured(out, _template_text(out))

    @domain_errors
    async def save_template(
        ctx: Context,
        name: Name,
        body: Annotated[str, Field(min_length=1, max_length=8000, description="Text with {placeholders}; {{ and }} are literal braces.")],
        description: Annotated[str, Field(max_length=500, description="What the template is for.")] = "",
        arguments: Annotated[list[TemplateArgumentOut] | None, Field(max_length=20, description="Describe placeholders; default: each {placeholder}, required.")] = None,
    ) -> Annotated[CallToolResult, TemplateOut]:
        """Create a template or a new version of it (versions are kept); a built-in's name overrides it."""
        args = [a.model_dump(exclude_none=True) for a in arguments or []]
        out = _out(app.templates.save(current_user(app), name, body, description=description, arguments=args))
        if out.unchanged:
            return structured(out, f"Unchanged: {out.name} v{out.version} already has this body, description and "
                                   "arguments, so no new version was saved.")
        await notify_prompts_changed(ctx)
        inferred = " (inferred from the body's {placeholders})" if not arguments and out.arguments else ""
        return structured(out, f"Saved template {out.name} v{out.version}. Arguments{inferred}: "
                               f"{_arguments_text(out)}.\nUse: generate_image with template \"{out.name}\", or the "
                               f"prompt {out.name}.")

    @domain_errors
    async def delete_template(ctx: Context, name: Name) -> Annotated[CallToolResult, TemplateDeleted]:
        """Delete the user's template, all versions; an overridden built-in comes back."""
        restored = app.templates.delete(current_user(app), name)
        await notify_prompts_changed(ctx)
        out = TemplateDeleted(deleted=name, restored_builtin=_out(restored) if restored else None)
        return structured(out, f"Deleted template {name} (all versions)." + (
            f" The built-in {name} v1 is back." if restored else ""))

    server.add_tool(list_templates, title="List templates", annotations=READ)
    server.add_tool(get_template, title="Get template", annotations=READ)
    server.add_tool(save_template, title="Save template", annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    server.add_tool(delete_template, title="Delete template", annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False))

    @server.resource("template://list", name="template-list", title="Templates", mime_type="application/json",
                     description="Every template this user can use, with arguments and versions.")
    def template_list() -> str:
        return json.dumps([t.to_dict() for t in app.templates.list(current_user(app))], indent=2)

    @server.resource("template://{name}", name="template", title="Template", mime_type="text/markdown",
                     description="One template in the prompts/ file format (front matter and body).")
    def template_file(name: str) -> str:
        try:
            return app.templates.export_text(current_user(app), name)
        except ContextServerError:
            raise ResourceNotFoundError(f"Resource not found: template://{name}") from None

    @server.resource("info://prompt-guide", name="prompt-guide", title="Prompt guide", mime_type="text/markdown",
                     description="Practical prompt advice per provider.")
    def guide() -> str:
        return prompt_guide()

    @server.completion()  # type: ignore[no-untyped-call, untyped-decorator]  # the SDK decorator is untyped
    async def complete(
        ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        user = current_user(app)
        if isinstance(ref, ResourceTemplateReference):
            if ref.uri == "template://{name}" and argument.name == "name":
                values = app.templates.complete_template_names(user, argument.value)
                return Completion(values=values, total=len(values), has_more=False)
            return None
        values = app.templates.complete_argument(user, ref.name, argument.name, argument.value,
                                                 style_words=app.memories.style_words(user))
        return Completion(values=values[:100], total=len(values), has_more=len(values) > 100)
