"""The offline `placeholder` provider: real images, no network, deterministic for (prompt, seed, size).

Its colours follow the prompt's words ("red", "ocean", "forest", "sunset"...), and a seeded layout of
shapes over a gradient makes two prompts look different, so a user can see that memory and templates
changed what was asked for. Image-to-image blends the source with the new picture by `strength`.
"""

from __future__ import annotations

import hashlib
import io
import random
import re

import anyio.to_thread
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from context_server.adapters.files import decode_image, full_size_image
from context_server.adapters.providers.base import (
    ModelInfo,
    ProgressFn,
    ProviderImage,
    ProviderInfo,
    ProviderRequest,
    SubmittedFn,
)

__all__ = ["PALETTE_WORDS", "PlaceholderProvider"]

RGB = tuple[int, int, int]

#: Words that steer colour, checked against the prompt's lower-cased words (and simple plurals).
PALETTE_WORDS: dict[str, tuple[RGB, ...]] = {
    "red": ((200, 30, 40), (120, 10, 20)),
    "crimson": ((170, 20, 50), (90, 5, 25)),
    "orange": ((245, 140, 30), (190, 80, 10)),
    "yellow": ((250, 220, 50), (200, 170, 20)),
    "gold": ((212, 175, 55), (150, 110, 30)),
    "green": ((40, 160, 60), (15, 90, 35)),
    "blue": ((40, 90, 210), (15, 40, 120)),
    "purple": ((130, 50, 180), (70, 20, 110)),
    "violet": ((150, 90, 210), (90, 40, 140)),
    "pink": ((240, 130, 180), (200, 80, 140)),
    "brown": ((120, 80, 40), (70, 45, 20)),
    "black": ((20, 20, 20), (50, 50, 55)),
    "white": ((245, 245, 245), (215, 215, 220)),
    "gray": ((128, 128, 128), (90, 90, 95)),
    "grey": ((128, 128, 128), (90, 90, 95)),
    "silver": ((192, 192, 200), (140, 140, 150)),
    "teal": ((0, 128, 128), (0, 80, 85)),
    "cyan": ((0, 200, 220), (0, 130, 160)),
    "magenta": ((210, 0, 160), (140, 0, 110)),
    "ocean": ((0, 105, 148), (0, 50, 90), (120, 200, 230)),
    "sea": ((0, 105, 148), (0, 60, 100)),
    "water": ((60, 140, 200), (20, 80, 140)),
    "river": ((60, 140, 200), (40, 110, 80)),
    "lake": ((50, 120, 170), (30, 90, 70)),
    "forest": ((34, 110, 50), (10, 60, 25), (90, 140, 60)),
    "jungle": ((20, 120, 40), (5, 70, 20)),
    "tree": ((50, 130, 60), (100, 70, 40)),
    "grass": ((90, 170, 60), (50, 120, 35)),
    "desert": ((230, 190, 130), (200, 150, 90)),
    "sand": ((225, 200, 150), (190, 160, 110)),
    "fire": ((255, 90, 0), (200, 30, 0), (255, 200, 60)),
    "lava": ((220, 60, 10), (60, 10, 5)),
    "sunset": ((255, 120, 60), (120, 40, 110), (255, 190, 90)),
    "sunrise": ((255, 170, 90), (120, 150, 220)),
    "night": ((15, 20, 60), (5, 5, 25)),
    "space": ((10, 10, 35), (60, 20, 90), (230, 230, 255)),
    "galaxy": ((40, 10, 80), (10, 5, 40), (200, 160, 255)),
    "spaceship": ((170, 180, 195), (20, 25, 50), (255, 120, 40)),
    "rocket": ((200, 200, 210), (230, 80, 30)),
    "star": ((250, 245, 200), (20, 20, 60)),
    "snow": ((240, 248, 255), (200, 220, 240)),
    "ice": ((190, 230, 250), (120, 180, 220)),
    "winter": ((220, 235, 250), (140, 160, 190)),
    "sky": ((135, 206, 235), (80, 150, 220)),
    "cloud": ((230, 235, 245), (170, 180, 200)),
    "mountain": ((110, 120, 140), (70, 80, 95), (240, 240, 250)),
    "rose": ((200, 30, 70), (60, 120, 50)),
    "lemon": ((250, 240, 80), (120, 170, 60)),
    "autumn": ((200, 100, 30), (150, 60, 20), (230, 170, 50)),
    "city": ((90, 95, 110), (230, 200, 120)),
    "neon": ((255, 0, 200), (0, 255, 240), (20, 0, 40)),
    "watercolour": ((200, 215, 225), (230, 200, 190)),
    "watercolor": ((200, 215, 225), (230, 200, 190)),
    "muted": ((160, 160, 150), (130, 140, 150)),
    "pastel": ((250, 210, 220), (200, 230, 250)),
}

MODELS = (
    ModelInfo(
        name="placeholder-1",
        cost_usd=0.0,
        text_to_image=True,
        image_to_image=True,
        mask=True,
        negative_prompt=True,
        seed=True,
        aspect_ratios=("1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4"),
        min_side=64,
        max_side=4096,
        multiple_of=1,
    ),
)


def _palette(prompt: str, rng: random.Random) -> list[RGB]:
    words = re.findall(r"[a-z]+", prompt.lower())
    colours: list[RGB] = []
    for word in words:
        found = PALETTE_WORDS.get(word) or (PALETTE_WORDS.get(word[:-1]) if word.endswith("s") else None)
        if found:
            colours.extend(found)
    if not colours:
        digest = hashlib.sha256(prompt.lower().encode()).digest()
        colours = [(digest[i], digest[i + 1], digest[i + 2]) for i in range(0, 9, 3)]
    while len(colours) < 3:
        base = colours[len(colours) % len(colours)]
        r, g, b = (max(0, min(255, c + rng.randint(-40, 40))) for c in base)
        colours.append((r, g, b))
    return colours


#: The placeholder draws at most this many pixels a side and scales up: its soft shapes lose nothing, and a
#: 4096² picture costs ~100 MiB and 0.3 s instead of ~300 MiB and several seconds of blurring.
DRAW_SIDE = 1024


def render(prompt: str, seed: int, width: int, height: int) -> Image.Image:
    if max(width, height) > DRAW_SIDE:
        scale = DRAW_SIDE / max(width, height)
        small = _render(prompt, seed, width, height, max(1, round(width * scale)), max(1, round(height * scale)))
        return small.resize((width, height), Image.Resampling.BICUBIC)
    return _render(prompt, seed, width, height, width, height)


def _render(prompt: str, seed: int, asked_width: int, asked_height: int, width: int, height: int) -> Image.Image:
    key = hashlib.sha256(f"{prompt}\x00{seed}\x00{asked_width}x{asked_height}".encode()).digest()
    rng = random.Random(key)
    colours = _palette(prompt, rng)
    top, bottom = colours[0], colours[1]
    gradient = Image.linear_gradient("L").resize((width, height))
    if rng.random() < 0.5:
        gradient = gradient.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    img = Image.composite(Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), gradient)
    overlay = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    side = min(width, height)
    for _ in range(rng.randint(4, 9)):
        colour = colours[rng.randrange(len(colours))]
        alpha = rng.randint(90, 200)
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randint(max(2, side // 20), max(3, side // 4))
        shape = rng.choice(("circle", "rect", "triangle"))
        if shape == "circle":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(*colour, alpha))
        elif shape == "rect":
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=(*colour, alpha))
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=(*colour, alpha))
    img = Image.alpha_composite(img.convert("RGBA"), overlay.filter(ImageFilter.GaussianBlur(side / 200)))
    return img.convert("RGB")


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


class PlaceholderProvider:
    """Needs no key and no network; always configured."""

    name = "placeholder"

    def info(self) -> ProviderInfo:
        return ProviderInfo(
            name=self.name,
            configured=True,
            models=MODELS,
            default_model=MODELS[0].name,
            description="Offline and free: draws a deterministic picture whose colours follow the prompt.",
        )

    async def generate(self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn) -> ProviderImage:
        seed = request.seed if request.seed is not None else 0
        await progress(0.1, "rendering")
        # Drawing is CPU work on full-size pixels: a worker thread (the event loop keeps answering) holding
        # a full-size slot, like any decode.
        data = await anyio.to_thread.run_sync(_draw, request, seed)
        await progress(0.9, "encoded")
        return ProviderImage(data=data, model=request.model, seed=seed)

    async def edit(self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn) -> ProviderImage:
        return await self.generate(request, progress, submitted)

    async def aclose(self) -> None:
        return None


def _draw(request: ProviderRequest, seed: int) -> bytes:
    with full_size_image(request.width * request.height):
        img = render(request.prompt, seed, request.width, request.height)
        if request.init_image is not None:
            source = decode_image(request.init_image, what="source image").convert("RGB")
            source = source.resize((request.width, request.height))
            strength = 0.5 if request.strength is None else request.strength
            img = _apply(source, img, strength, request.mask)
        return _png(img)


def _apply(source: Image.Image, generated: Image.Image, strength: float, mask: bytes | None) -> Image.Image:
    blended = Image.blend(source, generated, max(0.0, min(1.0, strength)))
    if mask is None:
        return blended
    m = decode_image(mask, what="mask").convert("L").resize(source.size)
    # White (or opaque) areas of the mask are repainted; black areas keep the source.
    return Image.composite(blended, source, ImageChops.invert(ImageChops.invert(m)))
