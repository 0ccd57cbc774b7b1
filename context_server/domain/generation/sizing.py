"""Turning width/height/aspect_ratio into a size the chosen model accepts, reporting any adaptation."""

from __future__ import annotations

from context_server.adapters.providers._common import nearest_size, ratio_of
from context_server.adapters.providers.base import ModelInfo
from context_server.errors import InvalidInput
from context_server.models import ASPECT_RATIOS

__all__ = ["DEFAULT_LONG_SIDE", "resolve_size"]

DEFAULT_LONG_SIDE = 1024


def _snap(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def resolve_size(model: ModelInfo, width: int | None, height: int | None,
                 aspect_ratio: str | None) -> tuple[int, int, list[str]]:
    notes: list[str] = []
    if aspect_ratio is not None and aspect_ratio not in ASPECT_RATIOS:
        raise InvalidInput(f"aspect_ratio {aspect_ratio!r} is not allowed; use one of {', '.join(ASPECT_RATIOS)}")
    ratio = ratio_of(aspect_ratio) if aspect_ratio else 1.0
    want_w: float
    want_h: float
    if width is None and height is None:
        long_side = min(DEFAULT_LONG_SIDE, model.max_side)
        want_w, want_h = (long_side, long_side / ratio) if ratio >= 1 else (long_side * ratio, long_side)
    elif width is None:
        assert height is not None
        want_w, want_h = height * ratio, height
    elif height is None:
        want_w, want_h = width, width / ratio
    else:
        want_w, want_h = width, height
    w, h = _snap(want_w, model.multiple_of), _snap(want_h, model.multiple_of)
    if model.sizes:
        if (w, h) not in model.sizes:
            best = nearest_size(w, h, model.sizes)
            allowed = ", ".join(f"{a}x{b}" for a, b in model.sizes)
            notes.append(f"size {w}x{h} adapted to {best[0]}x{best[1]} ({model.name} accepts {allowed})")
            w, h = best
        return w, h, notes
    for name, value in (("width", w), ("height", h)):
        if not model.min_side <= value <= model.max_side:
            raise InvalidInput(
                f"{name} {value} is outside what {model.name} accepts ({model.min_side}..{model.max_side})"
            )
    if (w, h) != (round(want_w), round(want_h)):
        notes.append(f"size adapted to {w}x{h} (multiples of {model.multiple_of} for {model.name})")
    return w, h, notes
