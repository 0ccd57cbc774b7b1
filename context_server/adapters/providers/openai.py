"""OpenAI Images API: gpt-image-1 and dall-e-3.

Wire format (OpenAI API reference, "Images" — Create image / Create image edit):

- `POST {base}/images/generations`, JSON `{model, prompt, n: 1, size: "WxH", ...}`; gpt-image-1
  always answers base64 and takes `quality` / `output_format`; dall-e-3 needs
  `response_format: "b64_json"` and returns `revised_prompt`.
- `POST {base}/images/edits`, multipart: `image` (file), optional `mask` (PNG, same size as the
  image, repainted where alpha is 0), `prompt`, `model`, `size`. Only gpt-image-1 here.
- Answer: `{"created": ..., "data": [{"b64_json": "...", "revised_prompt": "..."}]}`.

How unsupported parameters are handled (each adaptation is written to `ProviderImage.notes`):

- size: snapped to the nearest supported size by shape, then area (a note says so);
- negative_prompt, seed: OpenAI has neither; dropped with a note (never silently);
- strength: the edits endpoint has no strength; ignored with a note;
- dall-e-3 with an input image or mask, or an unknown model: `InvalidInput` naming what is allowed.
"""

from __future__ import annotations

from typing import Any

import httpx

from context_server.adapters.providers._common import (
    decode_b64,
    image_size,
    nearest_size,
    require_model,
    to_alpha_mask,
)
from context_server.adapters.providers._http import KeyedHttpProvider
from context_server.adapters.providers.base import (
    ModelInfo,
    ProgressFn,
    ProviderImage,
    ProviderInfo,
    ProviderRequest,
    SubmittedFn,
)
from context_server.adapters.providers.env import OPENAI
from context_server.errors import InvalidInput, ProviderError

__all__ = ["MODELS", "OpenAIProvider"]

GPT_IMAGE_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))
DALLE3_SIZES = ((1024, 1024), (1792, 1024), (1024, 1792))

MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        name="gpt-image-1",
        cost_usd=0.042,
        image_to_image=True,
        mask=True,
        sizes=GPT_IMAGE_SIZES,
        aspect_ratios=("1:1", "3:2", "2:3"),
        min_side=1024,
        max_side=1536,
    ),
    ModelInfo(
        name="dall-e-3",
        cost_usd=0.04,
        sizes=DALLE3_SIZES,
        aspect_ratios=("1:1",),
        min_side=1024,
        max_side=1792,
    ),
)

#: Estimated USD per image by (model, quality, square?) from OpenAI's pricing page.
_COST: dict[tuple[str, str, bool], float] = {
    ("gpt-image-1", "low", True): 0.011,
    ("gpt-image-1", "low", False): 0.016,
    ("gpt-image-1", "medium", True): 0.042,
    ("gpt-image-1", "medium", False): 0.063,
    ("gpt-image-1", "high", True): 0.167,
    ("gpt-image-1", "high", False): 0.25,
    ("dall-e-3", "standard", True): 0.04,
    ("dall-e-3", "standard", False): 0.08,
    ("dall-e-3", "hd", True): 0.08,
    ("dall-e-3", "hd", False): 0.12,
}


class OpenAIProvider(KeyedHttpProvider):
    """Speaks the OpenAI Images API. Configured when its key (`env.OPENAI`) is set."""

    name = "openai"
    env = OPENAI
    probe_path = "/models"

    def info(self) -> ProviderInfo:
        return ProviderInfo(
            name=self.name,
            configured=bool(self._key),
            models=MODELS,
            default_model="gpt-image-1",
            setup_hint=self._setup_hint(f"set {OPENAI.key}, and {OPENAI.base} for a compatible server"),
            description="OpenAI Images API: gpt-image-1 (generations and masked edits) and dall-e-3.",
        )

    def _headers(self) -> dict[str, str]:
        return self._bearer()

    def _common(self, request: ProviderRequest, model: ModelInfo, notes: list[str]) -> tuple[str, str]:
        """Validated size and quality; records every adaptation in `notes`."""
        width, height = nearest_size(request.width, request.height, model.sizes)
        if (width, height) != (request.width, request.height):
            notes.append(
                f"size {request.width}x{request.height} snapped to {width}x{height} ({model.name} sizes)"
            )
        if request.negative_prompt:
            notes.append(f"{model.name} has no negative prompt; ignored: {request.negative_prompt!r}")
        if request.seed is not None:
            notes.append(f"{model.name} does not take a seed; the result is not reproducible")
        default_quality = "medium" if model.name == "gpt-image-1" else "standard"
        quality = str(request.extra.get("quality") or default_quality)
        allowed = {q for (m, q, _) in _COST if m == model.name}
        if quality not in allowed:
            raise InvalidInput(
                f"quality {quality!r} is not allowed for {model.name}; allowed: {sorted(allowed)}"
            )
        return f"{width}x{height}", quality

    def _cost(self, model: str, quality: str, size: str) -> float:
        w, _, h = size.partition("x")
        return _COST[(model, quality, w == h)]

    async def generate(
        self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn
    ) -> ProviderImage:
        model = require_model(self.info(), request.model)
        if request.init_image is not None or request.mask is not None:
            if not model.image_to_image:
                raise InvalidInput(
                    f"{model.name} cannot start from an input image; use model gpt-image-1 for image-to-image"
                )
            return await self.edit(request, progress, submitted)
        notes: list[str] = []
        size, quality = self._common(request, model, notes)
        body: dict[str, Any] = {
            "model": model.name,
            "prompt": request.prompt,
            "n": 1,
            "size": size,
            "quality": quality,
        }
        if model.name == "dall-e-3":
            body["response_format"] = "b64_json"
        else:
            body["output_format"] = "png"
        await progress(0.05, f"sending to openai {model.name}")
        response = await self._http.request(
            "POST", f"{self._base}/images/generations", headers=self._headers(), json=body
        )
        return self._image(response, model.name, notes, self._cost(model.name, quality, size))

    async def edit(
        self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn
    ) -> ProviderImage:
        model = require_model(self.info(), request.model)
        if not model.mask:
            raise InvalidInput(f"{model.name} cannot edit images; use model gpt-image-1 for edits")
        if request.init_image is None:
            raise InvalidInput("an edit needs a source image")
        notes: list[str] = []
        size, quality = self._common(request, model, notes)
        if request.strength is not None:
            notes.append("OpenAI edits take no strength; ignored")
        files: dict[str, tuple[str, bytes, str]] = {"image": ("image.png", request.init_image, "image/png")}
        if request.mask is not None:
            files["mask"] = (
                "mask.png",
                to_alpha_mask(request.mask, image_size(request.init_image)),
                "image/png",
            )
        data = {"model": model.name, "prompt": request.prompt, "n": "1", "size": size, "quality": quality}
        await progress(0.05, f"sending edit to openai {model.name}")
        response = await self._http.request(
            "POST", f"{self._base}/images/edits", headers=self._headers(), data=data, files=files
        )
        return self._image(response, model.name, notes, self._cost(model.name, quality, size))

    def _image(self, response: httpx.Response, model: str, notes: list[str], cost: float) -> ProviderImage:
        try:
            item = response.json()["data"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ProviderError("openai: the answer had no image in data[0]", may_have_charged=True) from None
        revised = item.get("revised_prompt") if isinstance(item, dict) else None
        return ProviderImage(
            data=decode_b64(item.get("b64_json") if isinstance(item, dict) else None, self.name),
            model=model,
            revised_prompt=revised if isinstance(revised, str) else None,
            notes=notes,
            cost_usd=cost,
        )

    async def aclose(self) -> None:
        """The client is owned by whoever built it (the composition root), so nothing to close here."""
