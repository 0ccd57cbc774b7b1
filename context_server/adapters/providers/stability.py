"""Stability AI Stable Image API (v2beta): Core, Ultra, SD 3.5 and inpainting.

Wire format (Stability AI REST API reference, "Stable Image" — Generate and Edit):

- `POST {base}/v2beta/stable-image/generate/{core|ultra|sd3}`, always multipart/form-data, with
  `authorization: Bearer KEY` and `accept: application/json`. Fields: `prompt`,
  `negative_prompt`, `aspect_ratio` (text-to-image only), `seed` (0 = random), `output_format`;
  sd3 also `model` (sd3.5-large | sd3.5-large-turbo | sd3.5-medium) and `mode`
  (text-to-image | image-to-image); ultra and sd3 take `image` + `strength` for image-to-image.
- `POST {base}/v2beta/stable-image/edit/inpaint`: `image`, `mask` (white = repaint), `prompt`,
  `negative_prompt`, `seed`, `output_format`.
- Answer: `{"image": "<base64>", "seed": 123, "finish_reason": "SUCCESS" | "CONTENT_FILTERED"}`;
  errors `{"id", "name", "errors": [...]}`, content moderation is HTTP 403 `name: content_moderation`.

Stability picks the pixel size itself (about one megapixel) from an aspect ratio, so width x
height is sent as the nearest supported `aspect_ratio` and a note says so. Other adaptations, all
recorded in `ProviderImage.notes`: negative prompt on sd3.5-large-turbo dropped; image-to-image
without a strength uses 0.6; an edit without a mask runs as image-to-image on sd3.5-large. An
input image on `core`, or an unknown model, is `InvalidInput` naming what is allowed.
"""

from __future__ import annotations

from context_server.adapters.providers._common import decode_b64, nearest_ratio, require_model, to_white_mask
from context_server.adapters.providers._http import KeyedHttpProvider
from context_server.adapters.providers.base import (
    ModelInfo,
    ProgressFn,
    ProviderImage,
    ProviderInfo,
    ProviderRequest,
    SubmittedFn,
)
from context_server.adapters.providers.env import STABILITY
from context_server.errors import InvalidInput, ProviderError

__all__ = ["ASPECT_RATIOS", "MODELS", "StabilityProvider"]

ASPECT_RATIOS = ("1:1", "16:9", "9:16", "21:9", "9:21", "3:2", "2:3", "5:4", "4:5")
DEFAULT_STRENGTH = 0.6


def _model(name: str, cost: float, *, i2i: bool, negative: bool = True) -> ModelInfo:
    return ModelInfo(
        name=name,
        cost_usd=cost,
        image_to_image=i2i,
        negative_prompt=negative,
        seed=True,
        aspect_ratios=ASPECT_RATIOS,
    )


#: Cost per image: Stability credits at $0.01 each (Stability pricing page).
MODELS: tuple[ModelInfo, ...] = (
    _model("core", 0.03, i2i=False),
    _model("ultra", 0.08, i2i=True),
    _model("sd3.5-large", 0.065, i2i=True),
    _model("sd3.5-large-turbo", 0.04, i2i=True, negative=False),
    _model("sd3.5-medium", 0.035, i2i=True),
    ModelInfo(
        name="inpaint",
        cost_usd=0.03,
        text_to_image=False,
        image_to_image=False,
        mask=True,
        negative_prompt=True,
        seed=True,
    ),
)

_Fields = dict[str, tuple[str | None, bytes | str] | tuple[str, bytes, str]]


class StabilityProvider(KeyedHttpProvider):
    """Speaks the Stability v2beta Stable Image API. Configured when its key (`env.STABILITY`) is set."""

    name = "stability"
    env = STABILITY
    probe_path = "/v1/user/account"

    def info(self) -> ProviderInfo:
        return ProviderInfo(
            name=self.name,
            configured=bool(self._key),
            models=MODELS,
            default_model="core",
            setup_hint=self._setup_hint(),
            description="Stability AI Stable Image: Core, Ultra, SD 3.5 (text/image-to-image), inpainting.",
        )

    def _headers(self) -> dict[str, str]:
        return {**self._bearer(), "accept": "application/json"}

    @staticmethod
    def _text(fields: _Fields, name: str, value: object) -> None:
        fields[name] = (None, str(value))

    def _shared(self, request: ProviderRequest, model: ModelInfo, notes: list[str]) -> _Fields:
        fields: _Fields = {}
        self._text(fields, "prompt", request.prompt)
        self._text(fields, "output_format", "png")
        if request.negative_prompt:
            if model.negative_prompt:
                self._text(fields, "negative_prompt", request.negative_prompt)
            else:
                notes.append(f"{model.name} has no negative prompt; ignored: {request.negative_prompt!r}")
        if request.seed is not None:
            if not 0 <= request.seed <= 4294967294:
                raise InvalidInput("stability seeds must be between 0 and 4294967294")
            self._text(fields, "seed", request.seed)
        return fields

    async def generate(
        self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn
    ) -> ProviderImage:
        model = require_model(self.info(), request.model)
        if not model.text_to_image:
            raise InvalidInput(
                f"stability model {model.name!r} only edits; use edit_image, or a model among "
                f"{[m.name for m in MODELS if m.text_to_image]}"
            )
        notes: list[str] = []
        fields = self._shared(request, model, notes)
        if request.mask is not None:
            raise InvalidInput(
                "stability masks are for edits (the inpaint service); use edit_image with a mask"
            )
        if request.init_image is not None:
            if not model.image_to_image:
                allowed = [m.name for m in MODELS if m.image_to_image]
                raise InvalidInput(
                    f"stability {model.name} cannot start from an input image; use one of {allowed}"
                )
            fields["image"] = ("image.png", request.init_image, "image/png")
            strength = request.strength
            if strength is None:
                strength = DEFAULT_STRENGTH
                notes.append(f"no strength given; used {DEFAULT_STRENGTH}")
            self._text(fields, "strength", strength)
        else:
            ratio = nearest_ratio(request.width, request.height, ASPECT_RATIOS)
            notes.append(
                f"sent aspect_ratio {ratio} for {request.width}x{request.height}; "
                "Stability picks the pixel size (about 1 megapixel)"
            )
            self._text(fields, "aspect_ratio", ratio)
        if model.name.startswith("sd3"):
            endpoint = "sd3"
            self._text(fields, "model", model.name)
            self._text(
                fields, "mode", "image-to-image" if request.init_image is not None else "text-to-image"
            )
        else:
            endpoint = model.name
        await progress(0.05, f"sending to stability {model.name}")
        url = f"{self._base}/v2beta/stable-image/generate/{endpoint}"
        return await self._send(url, fields, model, notes)

    async def edit(
        self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn
    ) -> ProviderImage:
        if request.init_image is None:
            raise InvalidInput("an edit needs a source image")
        if request.mask is None:
            requested = self.info().model(request.model)
            model_name = (
                request.model if requested is not None and requested.image_to_image else "sd3.5-large"
            )
            image = await self.generate(
                ProviderRequest(
                    prompt=request.prompt,
                    model=model_name,
                    width=request.width,
                    height=request.height,
                    negative_prompt=request.negative_prompt,
                    seed=request.seed,
                    init_image=request.init_image,
                    strength=request.strength,
                    extra=request.extra,
                ),
                progress,
                submitted,
            )
            image.notes.insert(0, f"no mask given: edited as image-to-image with {model_name}")
            return image
        model = require_model(self.info(), "inpaint")
        notes: list[str] = []
        if request.model and request.model != "inpaint":
            notes.append(f"masked edits use Stability's inpaint service, not {request.model}")
        if request.strength is not None:
            notes.append("Stability inpaint takes no strength; ignored")
        fields = self._shared(request, model, notes)
        fields["image"] = ("image.png", request.init_image, "image/png")
        fields["mask"] = ("mask.png", to_white_mask(request.mask), "image/png")
        await progress(0.05, "sending edit to stability inpaint")
        return await self._send(f"{self._base}/v2beta/stable-image/edit/inpaint", fields, model, notes)

    async def _send(self, url: str, fields: _Fields, model: ModelInfo, notes: list[str]) -> ProviderImage:
        response = await self._http.request("POST", url, headers=self._headers(), files=fields)
        try:
            body = response.json()
        except ValueError:
            raise ProviderError("stability: the answer was not JSON", may_have_charged=True) from None
        if not isinstance(body, dict):
            raise ProviderError("stability: the answer was not a JSON object", may_have_charged=True)
        if body.get("finish_reason") == "CONTENT_FILTERED":
            raise ProviderError(
                "stability: the result was blocked by Stability's content moderation; the call may have been "
                "charged. Rephrase the prompt.",
                may_have_charged=True,
            )
        seed = body.get("seed")
        return ProviderImage(
            data=decode_b64(body.get("image"), self.name),
            model=model.name,
            seed=seed if isinstance(seed, int) else None,
            notes=notes,
        )

    async def aclose(self) -> None:
        """The client belongs to the composition root; nothing to close here."""
