"""The text of `info://prompt-guide`: how to write prompts that each provider handles well.

Kept as a plain markdown string in the domain so the resource, the CLI and the docs can all show
the same advice, and so an assistant reading it can adapt a prompt before calling
`generate_image` (the enrichment step adds styles and templates, but it does not rewrite syntax
for a provider).
"""

from __future__ import annotations

from context_server.models import ASPECT_RATIOS

__all__ = ["prompt_guide"]

_GUIDE = """\
# Prompt guide

## Everywhere
- Describe the picture, not the wish: **subject** (who/what, doing what) → **setting** → \
**composition** (framing, angle, lens) → **lighting** → **medium/style** → **colour and mood**.
- Be concrete: "a red fox sitting in fresh snow at dawn, 200mm telephoto" beats "a nice fox".
- Say what you want instead of what you don't: "a clear blue sky" rather than "no clouds". Only \
providers with a `negative_prompt` field (stability, sd_webui) can be told what to avoid.
- Put the most important thing first; long lists of adjectives dilute each other.
- Use `aspect_ratio` ({RATIOS}) rather than writing \
the shape into the prompt.
- Templates (`list_templates`, MCP prompts) give a tested structure; remembered styles are added \
automatically unless `apply_memory` is false. Check `final_prompt` in the receipt, or use \
`dry_run` to see it for free.

## placeholder (offline, default)
- No model: it draws a deterministic image whose colours follow colour words in the prompt; the \
same prompt and seed give the same image. Use it to try templates, memory and references \
without cost, then switch `provider`.

## openai: gpt-image-1
- Natural language, full sentences; long, specific prompts work well.
- Strong at **text in images**: put the exact words in quotes, say where they go and in what \
lettering: `a poster with the headline "SUMMER JAZZ" in bold art deco letters at the top`. \
Keep text short; check spelling in the result.
- Sizes 1024x1024, 1536x1024 (landscape), 1024x1536 (portrait). No negative prompt and no seed.
- Edits: describe the whole desired result, not only the change; a mask limits where it paints.

## openai: dall-e-3
- Natural language. It **rewrites your prompt** before drawing and returns the version it used \
(the receipt shows it as the revised prompt); if it drifts, be more explicit and shorter, or \
state that the prompt should be used as written.
- Sizes 1024x1024, 1792x1024, 1024x1792; one image per call; no negative prompt, no seed; \
text rendering is weaker than gpt-image-1.

## stability (Stable Image Ultra / Core, SD 3.5)
- Natural-language descriptions work; add medium and lighting explicitly.
- `negative_prompt` is supported: list unwanted things plainly ("blurry, watermark, extra \
fingers"); keep it short and relevant rather than a copied wall of words.
- Pass `aspect_ratio` (the API picks the pixel size); `seed` makes results repeatable.

## sd_webui (AUTOMATIC1111 / Forge, SD 1.5 / SDXL checkpoints)
- **Tag style** works best: comma-separated phrases, most important first: \
`portrait of an old fisherman, weathered face, wool sweater, harbour, golden hour, 85mm, \
film grain, highly detailed`.
- Weights: `(word:1.2)` strengthens, `(word:0.8)` weakens; `(word)` is ×1.1 and `[word]` ÷1.1. \
Stay within about 0.5–1.5. LoRAs: `<lora:name:0.8>`. In a template, write `{{` and `}}` for \
literal braces (e.g. dynamic-prompt syntax).
- Negative prompt matters: `lowres, blurry, jpeg artifacts, watermark, text, bad anatomy, \
extra fingers, deformed hands`.
- Steps 20–30 with a DPM++ 2M Karras-type sampler; CFG about 5–7 for SDXL, 7–9 for SD 1.5. \
Generate near the checkpoint's native size (SD 1.5: 512 px; SDXL: about one megapixel, \
e.g. 1024x1024 or 1216x832) and upscale afterwards.
- Prompts are read in 75-token chunks; very long prompts lose focus.

## replicate (Flux)
- Natural language, descriptive sentences: subject + action + style + context; Flux follows \
long, structured descriptions well and renders quoted text.
- **No negative prompt and no `(word:1.2)` weights**: describe what should be there instead.
- Give the aspect ratio as a parameter; `seed` repeats a result. Flux schnell is fast and \
needs few steps; dev/pro give more detail.
""".replace("{RATIOS}", ", ".join(f'"{ratio}"' for ratio in ASPECT_RATIOS))


def prompt_guide() -> str:
    """The guide as markdown (the same text every call)."""
    return _GUIDE
