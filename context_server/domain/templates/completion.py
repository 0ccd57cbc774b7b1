"""Completion values for template arguments (SPEC §5), free of MCP types.

What is offered depends on the argument: the template's own `examples:` first, then for
style-like arguments (style, mood, medium, lighting, palette, ...) the user's remembered style
words and a small vocabulary, and for `aspect_ratio` the seven ratios the API accepts. Matching is
by case-insensitive prefix of the whole value or of any word in it, so "wat" finds "watercolour"
and "loose watercolour wash".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from context_server.domain.templates.format import TemplateArgument
from context_server.models import ASPECT_RATIOS

__all__ = ["ASPECT_RATIOS", "VOCABULARY", "suggest_argument_values"]


# fmt: off
#: Words worth offering for arguments whose name says what kind of value they take.
VOCABULARY: dict[str, tuple[str, ...]] = {
    "style": (
        "photorealistic", "cinematic", "watercolour", "gouache", "oil painting", "ink and wash",
        "pencil sketch", "charcoal drawing", "flat vector", "isometric", "pixel art", "anime",
        "cel-shaded", "low-poly 3D", "claymation", "paper cut-out", "art nouveau", "art deco",
        "ukiyo-e woodblock print", "risograph print", "mid-century modern", "bauhaus", "synthwave",
        "vaporwave", "minimalist", "surreal", "storybook", "comic book", "line art",
    ),
    "mood": (
        "serene", "whimsical", "moody", "melancholic", "joyful", "eerie", "dramatic", "nostalgic",
        "cosy", "epic", "mysterious", "playful", "tense", "dreamy", "hopeful", "austere",
    ),
    "medium": (
        "watercolour on cold-press paper", "gouache", "oil on canvas", "acrylic", "ink and wash",
        "graphite pencil", "charcoal", "pastel", "coloured pencil", "linocut print", "screen print",
        "digital painting", "3D render", "35mm film photograph", "medium-format film", "collage",
    ),
    "lighting": (
        "soft natural window light", "golden hour", "blue hour", "overcast diffused light",
        "hard midday sun", "rim light", "backlit", "studio softbox", "three-point studio lighting",
        "chiaroscuro", "neon glow", "candlelight", "volumetric god rays", "moonlight",
        "practical lights", "high-key", "low-key",
    ),
    "palette": (
        "muted earth tones", "pastel", "monochrome", "black and white", "duotone teal and orange",
        "vibrant primaries", "warm autumn colours", "cool blues and greys", "jewel tones", "neon",
        "sepia", "limited three-colour palette", "complementary orange and blue",
    ),
    "camera": (
        "24mm wide angle", "35mm", "50mm prime", "85mm portrait lens", "100mm macro",
        "200mm telephoto", "tilt-shift", "drone aerial view", "eye level", "low angle",
        "high angle", "over-the-shoulder", "close-up", "medium shot", "wide establishing shot",
    ),
    "time": ("dawn", "morning", "midday", "golden hour", "dusk", "blue hour", "night"),
    "weather": ("clear sky", "light fog", "heavy rain", "snowfall", "overcast", "storm clouds", "haze"),
}

#: Argument names that take a kind of value above (an argument matches if its name contains the key).
_KINDS: dict[str, str] = {
    "style": "style", "look": "style", "aesthetic": "style", "mood": "mood", "atmosphere": "mood",
    "feeling": "mood", "medium": "medium", "technique": "medium", "lighting": "lighting",
    "light": "lighting", "palette": "palette", "colour": "palette", "color": "palette",
    "camera": "camera", "lens": "camera", "shot": "camera", "angle": "camera", "framing": "camera",
    "time": "time", "weather": "weather",
}
# fmt: on
_STYLE_KINDS = {"style", "mood", "medium", "lighting", "palette"}


def _kind(argument_name: str) -> str | None:
    name = argument_name.lower()
    if name in ("aspect_ratio", "aspect", "ratio"):
        return "aspect_ratio"
    return next((kind for key, kind in _KINDS.items() if key in name), None)


def _matches(value: str, prefix: str) -> bool:
    prefix = prefix.strip().lower()
    if not prefix:
        return True
    lowered = value.lower()
    return lowered.startswith(prefix) or any(word.startswith(prefix) for word in lowered.split())


def _unique(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        cleaned = " ".join(value.split())
        if cleaned and cleaned.lower() not in seen:
            seen.add(cleaned.lower())
            out.append(cleaned)
    return out


def suggest_argument_values(
    argument_name: str,
    declared: TemplateArgument | None,
    prefix: str,
    style_words: Sequence[str] = (),
) -> list[str]:
    """Candidates for `argument_name`, best first, filtered by `prefix`.

    >>> suggest_argument_values("aspect_ratio", None, "3")
    ['3:2', '3:4']
    """
    kind = _kind(argument_name)
    candidates: list[str] = list(declared.examples) if declared is not None else []
    if declared is not None and declared.default:
        candidates.append(declared.default)
    if kind == "aspect_ratio":
        candidates += ASPECT_RATIOS
    elif kind is not None:
        if kind in _STYLE_KINDS:
            candidates += style_words
        candidates += VOCABULARY[kind]
    return [value for value in _unique(candidates) if _matches(value, prefix)]
