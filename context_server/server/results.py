"""Domain results → MCP tool results: structured content (never bytes) plus the text the model reads.

Claude reads a tool's `content` text, and many clients pass it nothing else, so every text carries what
the model needs to answer the user and to make the next call: ids labelled by kind (`image_id: …`,
`job_id: …`, `memory_id: …`, never cut), the facts a person would ask about, scores where something was
ranked. Values are written as words: no Python `None`.

Every result fits a budget whatever the arguments: text ≤ `TEXT_BUDGET` characters (Claude Code refuses
a tool result over 25k tokens) and structured content ≤ `STRUCTURED_BUDGET` characters of JSON. Lists
get there by `fit_list` (shorter prompt previews, then fewer items with a `next_cursor`), single results
by `bounded_text` and `bounded_json` (the longest texts cut, with "…").
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from mcp.types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent
from pydantic import BaseModel

from context_server.models import GenerateResult

if TYPE_CHECKING:
    from context_server.domain.images import Images

__all__ = [
    "STRUCTURED_BUDGET",
    "TEXT_BUDGET",
    "bounded_json",
    "bounded_text",
    "clip",
    "fit_list",
    "generation_result",
    "generation_text",
    "one_line",
    "plural",
    "structured",
    "word",
]

TEXT_BUDGET = 16_000
STRUCTURED_BUDGET = 48_000
T = TypeVar("T")


def word(value: object, empty: str = "not set") -> str:
    """A value as the model should read it: `None` and "" become words, floats stay short."""
    if value is None or value == "":
        return empty
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def clip(text: str, width: int | None) -> str:
    """`text` cut to `width` characters, ending "…" when cut (None: whole)."""
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 1, 1)].rstrip() + "…"


def one_line(text: str, width: int | None = None) -> str:
    """For list lines: whitespace runs (newlines too) folded to one space, then cut to `width`."""
    return clip(" ".join(text.split()), width)


def bounded_text(text: str, more: str = "the structured content has every field") -> str:
    if len(text) <= TEXT_BUDGET:
        return text
    note = f"\n… (cut at {TEXT_BUDGET} characters; {more})"
    return text[: TEXT_BUDGET - len(note)].rstrip() + note


def bounded_json(data: Any, budget: int = STRUCTURED_BUDGET) -> Any:
    """`data` with its longest strings halved (ending "…") until its JSON fits `budget`; shape unchanged."""
    size = len(json.dumps(data, ensure_ascii=False))
    while size > budget:
        path, longest = _longest_string(data)
        if path is None or len(longest) <= 40:
            break
        cut = clip(longest, max(len(longest) // 2, 40))
        _set(data, path, cut)
        size -= len(longest) - len(cut)
    return data


def _longest_string(node: Any, path: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...] | None, str]:
    best: tuple[tuple[Any, ...] | None, str] = (None, "")
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        found = ((*path, key), value) if isinstance(value, str) else _longest_string(value, (*path, key))
        if found[0] is not None and len(found[1]) > len(best[1]):
            best = found
    return best


def _set(node: Any, path: tuple[Any, ...], value: str) -> None:
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def structured(model: BaseModel | dict[str, Any], text: str) -> CallToolResult:
    data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    return CallToolResult(content=[TextContent(text=bounded_text(text))], structured_content=bounded_json(data))


def fit_list(
    count: int,
    build: Callable[[int, int | None], tuple[str, dict[str, Any]]],
    widths: Sequence[int | None] = (300, 150, 80, 40),
) -> tuple[str, dict[str, Any]]:
    """The first `build(n, width)` (text, structured) within both budgets: all `count` items with the
    widest preview width that fits, else as many items as fit at the narrowest (the builder then sets
    `next_cursor` and says how to get the rest)."""

    def fits(out: tuple[str, dict[str, Any]]) -> bool:
        return len(out[0]) <= TEXT_BUDGET and len(json.dumps(out[1], ensure_ascii=False)) <= STRUCTURED_BUDGET

    for width in widths:
        out = build(count, width)
        if fits(out):
            return out
    low, high, narrowest = 1, count, widths[-1]
    while low < high:  # the largest n that fits
        mid = (low + high + 1) // 2
        if fits(build(mid, narrowest)):
            low = mid
        else:
            high = mid - 1
    text, data = build(low, narrowest)
    return bounded_text(text), bounded_json(data)


def cut_note(width: int | None, longest: int, how: str) -> str:
    """The line a list adds when it shortened something: how long, and where the whole text is."""
    if width is None or longest <= width:
        return ""
    return f"\nTexts longer than {width} characters are cut (…); {how}."


# --- generate_image / edit_image / get_generation ------------------------------------------------------


def _size(result: GenerateResult) -> str:
    return f"{result.width}x{result.height}" if result.width and result.height else "the model's default size"


def _receipt(result: GenerateResult) -> list[str]:
    """What enrichment added: template, profile defaults, styles, reference (with why and what else)."""
    lines: list[str] = []
    applied = result.applied
    if applied.template:
        version = getattr(applied, "template_version", None)
        lines.append(f"Template: {applied.template}" + (f" v{version}" if version else ""))
    if applied.profile:
        lines.append("Profile defaults filled in: " + ", ".join(f"{k}={word(v)}" for k, v in applied.profile.items()))
    if applied.styles:
        lines.append("Styles applied (from memory): " + "; ".join(
            f"memory_id: {s.memory_id} \"{clip(s.content, 200)}\" (score {s.score:.2f})" for s in applied.styles))
    reference = applied.reference
    if reference is not None:
        how = ("used as the starting image" if reference.mode == "image_to_image"
               else "its prompt continued, since this model cannot start from an image")
        lines.append(f"Reference: image_id: {reference.image_id} (score {reference.score:.2f}; {how}); "
                     f"its prompt: \"{clip(reference.prompt, 500)}\"")
        reason = getattr(reference, "reason", None)
        if reason:
            lines.append(f"  Chosen because: {reason}")
        if reference.alternatives:
            lines.append("  Other candidates (pass one as reference to use it instead): " + "; ".join(
                _alternative(a) for a in reference.alternatives[:5]))
    return lines


def _alternative(alt: object) -> str:
    data = alt if isinstance(alt, dict) else getattr(alt, "__dict__", {})
    if hasattr(alt, "model_dump"):
        data = alt.model_dump()
    parts = [f"image_id: {data.get('image_id', '?')}"]
    if data.get("score") is not None:
        parts.append(f"score {float(data['score']):.2f}")
    if data.get("prompt"):
        parts.append(f"\"{clip(str(data['prompt']), 120)}\"")
    return " ".join(parts)


def _seed(result: GenerateResult) -> str:
    return f"seed {result.seed}" if result.seed is not None else "no seed (the model takes none)"


def generation_text(result: GenerateResult, seed_given: bool = True) -> str:
    """The summary the model reads for one generation, whatever state it is in."""
    job = f"job_id: {result.job_id}" if result.job_id else ""
    if result.dry_run:
        lines = [
            "Dry run: nothing was generated or stored, and nothing was charged. This is what would be sent:",
            f"Provider/model: {result.provider}/{result.model} (estimated cost ${result.cost_usd:.3f})",
            f"Size: {_size(result)}; " + (_seed(result) if seed_given or result.seed is None
                                           else "a random seed (pass seed to fix one)"),
            f"Final prompt: {result.final_prompt}",
            f"Negative prompt: {word(result.negative_prompt, 'none')}",
            *_receipt(result),
            *(f"Note: {note}" for note in result.notes),
            "Call generate_image again without dry_run to generate it.",
        ]
        if not (result.applied.styles or result.applied.reference or result.applied.template):
            lines.insert(-1, "Nothing was added from memory, templates or references.")
        return bounded_text("\n".join(lines))
    if result.status == "running":
        return (f"Still generating ({job}, {round(result.progress * 100)}% done). Call get_generation with "
                f"job_id \"{result.job_id}\" in a few seconds to get the image.")
    if result.status == "failed":
        return f"Generation failed ({job}): {word(result.error, 'no reason was recorded')}"
    if getattr(result, "deleted", False):
        return (f"This generation ({job}) completed, but its image (image_id: {result.image_id}) has since been "
                f"deleted: no file or link remains. Its prompt was: \"{clip(result.final_prompt, 2000)}\"")
    lines = [
        f"Generated image_id: {result.image_id} ({job}) — {_size(result)} {word(result.format, 'png')} "
        f"with {result.provider}/{result.model}, {_seed(result)}, cost ${result.cost_usd:.3f}.",
        f"View: {result.uri} · file: {result.path}",
    ]
    if result.parent_id:
        lines.append(f"Made from image_id: {result.parent_id}")
    lines.append(f"Prompt sent: {result.final_prompt}" if result.final_prompt != result.prompt
                 else "Prompt sent as given (nothing added).")
    if result.negative_prompt:
        lines.append(f"Negative prompt: {result.negative_prompt}")
    lines.extend(_receipt(result))
    lines.extend(f"Note: {note}" for note in result.notes)
    lines.append(f"To change it: edit_image with image \"{result.image_id}\", or generate_image with reference "
                 f"\"{result.image_id}\".")
    return bounded_text("\n".join(lines), f"image://{result.image_id}/metadata has the whole provenance")


def generation_result(result: GenerateResult, user_id: str, images: Images,
                      seed_given: bool = True) -> CallToolResult:
    content: list[ContentBlock] = [TextContent(text=generation_text(result, seed_given))]
    if result.status == "completed" and result.path and result.image_id and not getattr(result, "deleted", False):
        try:
            preview = images.preview(user_id, result.image_id)
            content.append(ImageContent(data=base64.b64encode(preview).decode(), mime_type="image/jpeg"))
        except Exception:  # the file went missing since; the text and link still describe it
            pass
        content.append(ResourceLink(uri=result.uri or "", name=f"image-{result.image_id}",
                                    title=clip(result.prompt, 80), mime_type=f"image/{result.format or 'png'}",
                                    description="The full-size image"))
    return CallToolResult(content=content, structured_content=bounded_json(result.model_dump(mode="json")),
                          is_error=result.status == "failed")
