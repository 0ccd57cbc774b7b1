"""What every adapter shares: model lookup, snapping sizes and ratios, translating masks, base64.

Our mask convention (the domain's `ProviderRequest.mask`): a PNG where **white or transparent
pixels are repainted** and black opaque pixels are kept. Providers disagree — OpenAI repaints where
alpha is 0, Stability / A1111 / FLUX Fill repaint where the mask is white — so each adapter
converts with one of the two functions here instead of trusting the caller to know.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable

from PIL import Image, ImageChops, UnidentifiedImageError

from context_server.adapters.providers.base import ModelInfo, ProviderInfo
from context_server.errors import InvalidInput, ProviderError

__all__ = [
    "b64png",
    "decode_b64",
    "image_size",
    "nearest_ratio",
    "nearest_size",
    "ratio_of",
    "repaint_area",
    "require_model",
    "to_alpha_mask",
    "to_white_mask",
]


def require_model(info: ProviderInfo, name: str | None) -> ModelInfo:
    """The model asked for (or the default), or InvalidInput listing the models there are."""
    model = info.model(name)
    if model is None:
        allowed = ", ".join(m.name for m in info.models)
        raise InvalidInput(f"{info.name} has no model {name!r}; allowed: {allowed}")
    return model


def ratio_of(text: str) -> float:
    """'16:9' → 1.777..."""
    w, h = text.split(":")
    return int(w) / int(h)


def nearest_size(width: int, height: int, sizes: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """The allowed size closest in shape (aspect ratio), then in area, to width x height."""
    wanted = width / height
    return min(sizes, key=lambda s: (abs(s[0] / s[1] - wanted), abs(s[0] * s[1] - width * height)))


def nearest_ratio(width: int, height: int, ratios: Iterable[str]) -> str:
    wanted = width / height
    return min(ratios, key=lambda r: abs(ratio_of(r) - wanted))


def _open(data: bytes, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidInput(f"the {what} is not a readable PNG/JPEG/WEBP image ({exc})") from None
    return image


def repaint_area(mask: bytes) -> Image.Image:
    """An 'L' image, 255 where the mask asks for repainting (white or transparent), 0 elsewhere."""
    image = _open(mask, "mask")
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        transparent = rgba.getchannel("A").point(lambda a: 255 if a < 128 else 0)
        white = rgba.convert("L").point(lambda v: 255 if v >= 128 else 0)
        opaque_white = ImageChops.multiply(
            white, rgba.getchannel("A").point(lambda a: 255 if a >= 128 else 0)
        )
        return ImageChops.lighter(transparent, opaque_white)
    return image.convert("L").point(lambda v: 255 if v >= 128 else 0)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def to_white_mask(mask: bytes, size: tuple[int, int] | None = None) -> bytes:
    """Grayscale PNG, white = repaint (Stability inpaint, A1111, FLUX Fill)."""
    area = repaint_area(mask)
    if size is not None and area.size != size:
        area = area.resize(size, Image.Resampling.NEAREST)
    return _png(area)


def to_alpha_mask(mask: bytes, size: tuple[int, int] | None = None) -> bytes:
    """RGBA PNG, alpha 0 = repaint (OpenAI edits). `size` must match the source image for OpenAI."""
    area = repaint_area(mask)
    if size is not None and area.size != size:
        area = area.resize(size, Image.Resampling.NEAREST)
    rgba = Image.new("RGBA", area.size, (0, 0, 0, 255))
    rgba.putalpha(area.point(lambda v: 0 if v else 255))
    return _png(rgba)


def image_size(data: bytes, what: str = "source image") -> tuple[int, int]:
    size: tuple[int, int] = _open(data, what).size
    return size


def b64png(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_b64(text: object, provider: str) -> bytes:
    """Base64 image data from a provider's answer (a data: URI prefix is allowed)."""
    if not isinstance(text, str) or not text:
        raise ProviderError(f"{provider}: the answer carried no image data", may_have_charged=True)
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ProviderError(
            f"{provider}: the answer's image data is not valid base64", may_have_charged=True
        ) from None
