"""Domain results → MCP tool results: structured content (never bytes) plus what a person sees."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from mcp.types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent
from pydantic import BaseModel

from context_server.models import GenerateResult

if TYPE_CHECKING:
    from context_server.domain.images import Images

__all__ = ["generation_result", "structured"]


def structured(model: BaseModel, text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=text)], structured_content=model.model_dump(mode="json"))


def _summary(result: GenerateResult) -> str:
    if result.dry_run:
        head = f"Dry run (nothing generated, nothing stored). Would send to {result.provider}/{result.model}:"
        return f"{head}\n{result.final_prompt}"
    if result.status == "running":
        return (f"Still generating (job {result.job_id}, {round(result.progress * 100)}%). "
                f"Call get_generation with job_id {result.job_id!r} to fetch it.")
    if result.status == "failed":
        return f"Generation failed: {result.error}"
    lines = [f"Generated {result.width}x{result.height} {result.format} with {result.provider}/{result.model} "
             f"(seed {result.seed}): {result.uri}", f"File: {result.path}"]
    if result.final_prompt != result.prompt:
        lines.append(f"Prompt sent: {result.final_prompt}")
    applied = result.applied
    if applied.styles:
        lines.append("Styles applied: " + "; ".join(s.content for s in applied.styles))
    if applied.profile:
        lines.append("Profile defaults: " + ", ".join(f"{k}={v}" for k, v in applied.profile.items()))
    if applied.template:
        lines.append(f"Template: {applied.template}")
    if applied.reference:
        lines.append(f"Reference: {applied.reference.image_id} ({applied.reference.mode})")
    lines.extend(f"Note: {note}" for note in result.notes)
    return "\n".join(lines)


def generation_result(result: GenerateResult, user_id: str, images: Images) -> CallToolResult:
    content: list[ContentBlock] = [TextContent(text=_summary(result))]
    if result.status == "completed" and result.path and result.image_id:
        try:
            preview = images.preview(user_id, result.image_id)
            content.append(ImageContent(data=base64.b64encode(preview).decode(), mime_type="image/jpeg"))
        except Exception:  # the file was deleted since; the text and link still describe it
            pass
        content.append(ResourceLink(uri=result.uri or "", name=f"image-{result.image_id}",
                                    title=result.prompt[:80], mime_type=f"image/{result.format or 'png'}",
                                    description="The full-size image"))
    return CallToolResult(content=content, structured_content=result.model_dump(mode="json"),
                          is_error=result.status == "failed")
