"""AUTOMATIC1111 / Forge stable-diffusion-webui, through its built-in API (`--api`).

Wire format (AUTOMATIC1111 wiki "API", the web UI's FastAPI schema at `/docs`), `{base}` being the web
UI's address (its variable: `env.SD_WEBUI`):

- `POST {base}/sdapi/v1/txt2img` JSON: `prompt`, `negative_prompt`, `seed` (-1 = random),
  `width`, `height`, `steps`, `cfg_scale`, `sampler_name`, `batch_size`, `n_iter`.
- `POST {base}/sdapi/v1/img2img` JSON: the same plus `init_images` (base64 list),
  `denoising_strength`, and for inpainting `mask` (base64, white = repaint), `inpainting_fill`,
  `mask_blur`.
- Both answer `{"images": ["<base64>"], "parameters": {...}, "info": "<JSON string>"}`; the seed
  actually used is `json.loads(info)["seed"]`.
- `GET {base}/sdapi/v1/progress?skip_current_image=true` answers
  `{"progress": 0..1, "eta_relative": s, "state": {...}, "textinfo": ...}`. The generation call
  blocks until done, so progress is polled concurrently while it runs.

The web UI generates with whichever checkpoint it has loaded: one model, `webui`
(`extra["checkpoint"]` switches it for one call through `override_settings`). Sizes are free
within 64..2048: a side that is not a multiple of 8 is rounded to one (a note says so); outside
the range is `InvalidInput`. Image-to-image without a strength uses 0.75 (noted). Nothing here
costs money, so failures never say "may have been charged".
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import httpx

from context_server.adapters.providers._common import b64png, decode_b64, require_model, to_white_mask
from context_server.adapters.providers._http import HttpCaller, RetryPolicy, SleepFn, probe
from context_server.adapters.providers.base import (
    ModelInfo,
    ProgressFn,
    ProviderHealth,
    ProviderImage,
    ProviderInfo,
    ProviderRequest,
    SubmittedFn,
)
from context_server.adapters.providers.env import SD_WEBUI
from context_server.errors import InvalidInput, ProviderError

__all__ = ["MODELS", "SdWebUIProvider"]

logger = logging.getLogger(__name__)

MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        name="webui",
        cost_usd=0.0,
        image_to_image=True,
        mask=True,
        negative_prompt=True,
        seed=True,
        min_side=64,
        max_side=2048,
        multiple_of=8,
    ),
)
DEFAULT_STRENGTH = 0.75
#: Local generation on a small GPU (or a CPU) can take minutes.
_TIMEOUT = httpx.Timeout(connect=10.0, read=900.0, write=60.0, pool=10.0)


class SdWebUIProvider:
    """Speaks the AUTOMATIC1111/Forge API. Configured when its address (`env.SD_WEBUI`) is set; it needs no key."""

    name = "sd_webui"

    def __init__(
        self,
        settings_env: dict[str, str],
        client: httpx.AsyncClient,
        *,
        sleep: SleepFn | None = None,
        policy: RetryPolicy | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self._base = (settings_env.get(SD_WEBUI.base) or "").rstrip("/")
        self._http = HttpCaller(
            client, provider=self.name, key_env=None, policy=policy, sleep=sleep, paid=False
        )
        self._poll_interval = poll_interval

    def info(self) -> ProviderInfo:
        return ProviderInfo(
            name=self.name,
            configured=bool(self._base),
            models=MODELS,
            default_model="webui",
            setup_hint=""
            if self._base
            else f"set {SD_WEBUI.base} to a web UI started with --api (e.g. http://127.0.0.1:7860)",
            description="A local AUTOMATIC1111/Forge web UI (txt2img, img2img, inpainting).",
        )

    def health_check(self, *, transport: httpx.BaseTransport | None = None,
                     timeout: float = 3.0) -> ProviderHealth | None:
        return probe(self._base, "/sdapi/v1/progress", {}, base_env=SD_WEBUI.base, key_env=None,
                     transport=transport, timeout=timeout)

    def _size(self, request: ProviderRequest, notes: list[str]) -> tuple[int, int]:
        sides = []
        for label, value in (("width", request.width), ("height", request.height)):
            if not 64 <= value <= 2048:
                raise InvalidInput(
                    f"sd_webui {label} must be between 64 and 2048 (a multiple of 8); got {value}"
                )
            sides.append(max(64, min(2048, round(value / 8) * 8)))
        width, height = sides
        if (width, height) != (request.width, request.height):
            notes.append(
                f"size {request.width}x{request.height} rounded to {width}x{height} (multiples of 8)"
            )
        return width, height

    def _payload(self, request: ProviderRequest, notes: list[str]) -> dict[str, Any]:
        if not self._base:
            raise ProviderError(f"sd_webui is not configured: set {SD_WEBUI.base}")
        require_model(self.info(), request.model)
        width, height = self._size(request, notes)
        payload: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or "",
            "seed": -1 if request.seed is None else request.seed,
            "width": width,
            "height": height,
            "batch_size": 1,
            "n_iter": 1,
            "send_images": True,
            "save_images": False,
        }
        for key in ("steps", "cfg_scale", "sampler_name", "scheduler"):
            if key in request.extra:
                payload[key] = request.extra[key]
        if request.extra.get("checkpoint"):
            payload["override_settings"] = {"sd_model_checkpoint": str(request.extra["checkpoint"])}
        return payload

    async def generate(
        self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn
    ) -> ProviderImage:
        if request.init_image is not None:
            return await self.edit(request, progress, submitted)
        notes: list[str] = []
        payload = self._payload(request, notes)
        return await self._run("txt2img", payload, progress, notes)

    async def edit(
        self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn
    ) -> ProviderImage:
        if request.init_image is None:
            raise InvalidInput("an edit needs a source image")
        notes: list[str] = []
        payload = self._payload(request, notes)
        strength = request.strength
        if strength is None:
            strength = DEFAULT_STRENGTH
            notes.append(f"no strength given; used denoising_strength {DEFAULT_STRENGTH}")
        payload.update(init_images=[b64png(request.init_image)], denoising_strength=strength, resize_mode=0)
        if request.mask is not None:
            payload.update(
                mask=b64png(to_white_mask(request.mask)),
                inpainting_fill=1,
                mask_blur=4,
                inpainting_mask_invert=0,
                inpaint_full_res=False,
            )
        return await self._run("img2img", payload, progress, notes)

    async def _run(
        self, route: str, payload: dict[str, Any], progress: ProgressFn, notes: list[str]
    ) -> ProviderImage:
        await progress(0.02, f"sending to the web UI ({route})")
        outcome: list[httpx.Response | ProviderError] = []

        async def call() -> None:
            # Errors are carried out by hand: a task group would wrap them in an ExceptionGroup.
            try:
                outcome.append(
                    await self._http.request(
                        "POST", f"{self._base}/sdapi/v1/{route}", json=payload, timeout=_TIMEOUT
                    )
                )
            except ProviderError as exc:
                outcome.append(exc)
            finally:
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            tg.start_soon(self._poll_progress, progress)
        if isinstance(outcome[0], ProviderError):
            raise outcome[0]
        return self._image(outcome[0], notes)

    async def _poll_progress(self, progress: ProgressFn) -> None:
        """Reports the web UI's own progress until cancelled; a failed poll is not the job's failure."""
        last = -1.0
        while True:
            await anyio.sleep(self._poll_interval)
            try:
                response = await self._http.client.get(
                    f"{self._base}/sdapi/v1/progress", params={"skip_current_image": "true"}, timeout=5.0
                )
                body = response.json()
                value = float(body.get("progress") or 0.0)
            except (httpx.HTTPError, ValueError, TypeError, AttributeError) as exc:
                logger.debug("sd_webui progress poll failed: %s", type(exc).__name__)
                continue
            value = max(0.0, min(0.99, value))
            if value > last:
                last = value
                eta = body.get("eta_relative")
                message = (
                    f"sampling, about {float(eta):.0f} s left"
                    if isinstance(eta, (int, float))
                    else "sampling"
                )
                await progress(value, message)

    def _image(self, response: httpx.Response, notes: list[str]) -> ProviderImage:
        try:
            body = response.json()
            first = body["images"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ProviderError("sd_webui: the answer had no image in images[0]") from None
        seed: int | None = None
        info = body.get("info")
        try:
            parsed = json.loads(info) if isinstance(info, str) else info
            if isinstance(parsed, dict) and isinstance(parsed.get("seed"), int):
                seed = parsed["seed"]
        except ValueError:
            notes.append("the web UI's info was not JSON; seed unknown")
        return ProviderImage(data=decode_b64(first, self.name), model="webui", seed=seed, notes=notes)

    async def aclose(self) -> None:
        """The client belongs to the composition root; nothing to close here."""
