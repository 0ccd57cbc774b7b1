"""Replicate predictions: create, record the id, poll, download; cancel only when it runs too long.

Wire format (Replicate HTTP API reference — "Create a prediction using an official model",
"Get a prediction", "Cancel a prediction"):

- `POST {base}/models/{owner}/{name}/predictions` JSON `{"input": {...}}` with
  `Authorization: Bearer TOKEN` → 201 `{"id", "status": "starting", "urls": {"get", "cancel"}, ...}`.
- `GET {base}/predictions/{id}` → `status` starting | processing | succeeded | failed | canceled,
  `logs` (the model's stdout, e.g. tqdm "50%|####" lines), `output` (a URL or a list of URLs),
  `error`.
- `POST {base}/predictions/{id}/cancel`.

`Prefer: wait` is deliberately not sent: it holds the create call open, and the prediction id must
be recorded (`submitted`) the moment it exists so a restarted server resumes polling
(`request.resume_id`) instead of paying for a second prediction. Input images go as data: URIs
(Replicate accepts them; its docs advise the files API above ~256 KB).

Adaptations (noted in `ProviderImage.notes`): width x height is sent as the nearest FLUX
`aspect_ratio`; a short model name (`flux-schnell`) means `black-forest-labs/flux-schnell`.
Negative prompts (FLUX has none) are dropped with a note; an input image for a model without
image-to-image, or a mask for a model without fill, is `InvalidInput` naming the models that can.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import anyio
import httpx

from context_server.adapters.providers._common import (
    b64png,
    decode_b64,
    nearest_ratio,
    require_model,
    to_white_mask,
)
from context_server.adapters.providers._http import KeyedHttpProvider, RetryPolicy, SleepFn
from context_server.adapters.providers.base import (
    ModelInfo,
    ProgressFn,
    ProviderImage,
    ProviderInfo,
    ProviderRequest,
    SubmittedFn,
)
from context_server.adapters.providers.env import REPLICATE
from context_server.errors import InvalidInput, ProviderError

__all__ = ["FLUX_ASPECT_RATIOS", "MODELS", "ReplicateProvider"]

logger = logging.getLogger(__name__)

FLUX_ASPECT_RATIOS = ("1:1", "16:9", "9:16", "21:9", "9:21", "3:2", "2:3", "4:3", "3:4", "5:4", "4:5")
_TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
_PERCENT = re.compile(r"(\d{1,3})%\|")
_SEED = re.compile(r"[Uu]sing seed:?\s*(\d+)")


def _flux(name: str, cost: float, **caps: Any) -> ModelInfo:
    return ModelInfo(
        name=f"black-forest-labs/{name}", cost_usd=cost, seed=True, aspect_ratios=FLUX_ASPECT_RATIOS, **caps
    )


#: USD per output image, from each model's Replicate page (billed per image for these models).
MODELS: tuple[ModelInfo, ...] = (
    _flux("flux-schnell", 0.003),
    _flux("flux-dev", 0.025, image_to_image=True),
    _flux("flux-1.1-pro", 0.04),
    _flux("flux-fill-pro", 0.05, text_to_image=False, mask=True),
)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + b64png(png)


class ReplicateProvider(KeyedHttpProvider):
    """Runs models on Replicate. Configured when its token (`env.REPLICATE`) is set."""

    name = "replicate"
    env = REPLICATE
    probe_path = "/account"

    def __init__(
        self,
        settings_env: dict[str, str],
        client: httpx.AsyncClient,
        *,
        sleep: SleepFn | None = None,
        policy: RetryPolicy | None = None,
        poll_interval: float = 1.0,
        max_wait: float = 900.0,
    ) -> None:
        super().__init__(settings_env, client, sleep=sleep, policy=policy)
        self._poll_interval = poll_interval
        self._max_wait = max_wait

    def info(self) -> ProviderInfo:
        return ProviderInfo(
            name=self.name,
            configured=bool(self._key),
            models=MODELS,
            default_model="black-forest-labs/flux-schnell",
            setup_hint=self._setup_hint(),
            description="Replicate predictions: FLUX schnell/dev/1.1-pro and FLUX Fill for masked edits.",
        )

    def _headers(self) -> dict[str, str]:
        return self._bearer()

    def _model(self, name: str | None) -> ModelInfo:
        if name and "/" not in name:
            name = f"black-forest-labs/{name}"
        return require_model(self.info(), name)

    def _input(self, request: ProviderRequest, model: ModelInfo, notes: list[str]) -> dict[str, Any]:
        data: dict[str, Any] = {"prompt": request.prompt, "output_format": "png"}
        if request.seed is not None:
            data["seed"] = request.seed
        if request.negative_prompt:
            notes.append(f"{model.name} has no negative prompt; ignored: {request.negative_prompt!r}")
        if model.text_to_image:
            ratio = nearest_ratio(request.width, request.height, FLUX_ASPECT_RATIOS)
            notes.append(
                f"sent aspect_ratio {ratio} for {request.width}x{request.height}; "
                "the model picks the pixel size"
            )
            data["aspect_ratio"] = ratio
            data["num_outputs"] = 1
        return data

    async def generate(
        self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn
    ) -> ProviderImage:
        model = self._model(request.model)
        if request.mask is not None:
            return await self.edit(request, progress, submitted)
        if not model.text_to_image:
            raise InvalidInput(f"{model.name} only fills masked areas; use edit_image with a mask")
        notes: list[str] = []
        data = self._input(request, model, notes)
        if request.init_image is not None:
            if not model.image_to_image:
                allowed = [m.name for m in MODELS if m.image_to_image]
                raise InvalidInput(f"{model.name} cannot start from an input image; use one of {allowed}")
            data["image"] = _data_uri(request.init_image)
            data["prompt_strength"] = 0.8 if request.strength is None else request.strength
            data.pop("aspect_ratio", None)
        return await self._run(request, model, data, notes, progress, submitted)

    async def edit(
        self, request: ProviderRequest, progress: ProgressFn, submitted: SubmittedFn
    ) -> ProviderImage:
        if request.init_image is None:
            raise InvalidInput("an edit needs a source image")
        if request.mask is None:
            model = self._model(
                request.model if request.model and "fill" not in request.model else "flux-dev"
            )
            return await self.generate(
                ProviderRequest(
                    prompt=request.prompt,
                    model=model.name,
                    width=request.width,
                    height=request.height,
                    negative_prompt=request.negative_prompt,
                    seed=request.seed,
                    init_image=request.init_image,
                    strength=request.strength,
                    resume_id=request.resume_id,
                    extra=request.extra,
                ),
                progress,
                submitted,
            )
        model = self._model(request.model)
        notes: list[str] = []
        if not model.mask:
            notes.append(f"masked edits use black-forest-labs/flux-fill-pro, not {model.name}")
            model = self._model("flux-fill-pro")
        data = self._input(request, model, notes)
        data["image"] = _data_uri(request.init_image)
        data["mask"] = _data_uri(to_white_mask(request.mask))
        if request.strength is not None:
            notes.append("FLUX Fill takes no strength; ignored")
        return await self._run(request, model, data, notes, progress, submitted)

    async def _run(
        self,
        request: ProviderRequest,
        model: ModelInfo,
        data: dict[str, Any],
        notes: list[str],
        progress: ProgressFn,
        submitted: SubmittedFn,
    ) -> ProviderImage:
        headers = self._headers()
        if request.resume_id:
            prediction_id = request.resume_id
            notes.append(f"resumed prediction {prediction_id}")
            await progress(0.05, f"resuming replicate prediction {prediction_id}")
            prediction = await self._get(prediction_id, headers)
        else:
            await progress(0.02, f"creating a replicate prediction on {model.name}")
            response = await self._http.request(
                "POST", f"{self._base}/models/{model.name}/predictions", headers=headers, json={"input": data}
            )
            prediction = self._json(response)
            prediction_id = str(prediction.get("id") or "")
            if not prediction_id:
                raise ProviderError("replicate: the created prediction had no id", may_have_charged=True)
        try:
            if not request.resume_id:
                await submitted(prediction_id)
            with anyio.fail_after(self._max_wait):
                prediction = await self._poll(prediction_id, prediction, headers, progress)
        except TimeoutError:
            await self._cancel(prediction_id, headers)
            raise ProviderError(
                f"replicate: prediction {prediction_id} did not finish within {self._max_wait:.0f} s and was "
                "cancelled; the call may have been charged for the time it ran.",
                may_have_charged=True,
            ) from None
        # A cancelled task (the server shutting down) leaves the prediction running on purpose: its id is
        # recorded, so the next start resumes polling it instead of paying for a second prediction.
        return await self._finish(prediction_id, prediction, model, notes, headers)

    async def _poll(
        self, prediction_id: str, prediction: dict[str, Any], headers: dict[str, str], progress: ProgressFn
    ) -> dict[str, Any]:
        while str(prediction.get("status")) not in _TERMINAL:
            await self._report(prediction, progress)
            await self._http.sleep(self._poll_interval)
            prediction = await self._get(prediction_id, headers)
        return prediction

    async def _report(self, prediction: dict[str, Any], progress: ProgressFn) -> None:
        status = str(prediction.get("status"))
        if status == "starting":
            await progress(0.05, "starting (the model may be booting)")
            return
        found = _PERCENT.findall(str(prediction.get("logs") or ""))
        fraction = int(found[-1]) / 100 if found else 0.0
        await progress(0.1 + 0.85 * min(1.0, fraction), f"processing {int(fraction * 100)}%")

    async def _get(self, prediction_id: str, headers: dict[str, str]) -> dict[str, Any]:
        response = await self._http.request(
            "GET", f"{self._base}/predictions/{prediction_id}", headers=headers, idempotent=True
        )
        return self._json(response)

    async def _cancel(self, prediction_id: str, headers: dict[str, str]) -> None:
        """Best effort, shielded from the cancellation that asked for it, and bounded in time."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            try:
                await self._http.client.post(
                    f"{self._base}/predictions/{prediction_id}/cancel", headers=headers, timeout=10.0
                )
                logger.info("replicate: cancelled prediction %s", prediction_id)
            except httpx.HTTPError as exc:
                logger.warning(
                    "replicate: could not cancel prediction %s (%s)", prediction_id, type(exc).__name__
                )

    async def _finish(
        self,
        prediction_id: str,
        prediction: dict[str, Any],
        model: ModelInfo,
        notes: list[str],
        headers: dict[str, str],
    ) -> ProviderImage:
        status = prediction.get("status")
        if status != "succeeded":
            error = self._http.scrub(str(prediction.get("error") or "no reason given"))[:300]
            if "nsfw" in error.lower() or "safety" in error.lower():
                what = f"the result was refused by the model's safety checker ({error}). Rephrase the prompt"
            else:
                what = f"prediction {prediction_id} {status}: {error}"
            raise ProviderError(
                f"replicate: {what}; the call may have been charged for the time it ran.",
                may_have_charged=True,
            )
        output = prediction.get("output")
        url = output[0] if isinstance(output, list) and output else output
        if not isinstance(url, str) or not url:
            raise ProviderError(
                f"replicate: prediction {prediction_id} succeeded without an output", may_have_charged=True
            )
        seed = prediction.get("input", {}).get("seed") if isinstance(prediction.get("input"), dict) else None
        if not isinstance(seed, int):
            found = _SEED.findall(str(prediction.get("logs") or ""))
            seed = int(found[-1]) if found else None
        image = await self._download(url, headers)
        return ProviderImage(
            data=image, model=model.name, seed=seed if isinstance(seed, int) else None, notes=notes
        )

    async def _download(self, url: str, headers: dict[str, str]) -> bytes:
        if url.startswith("data:"):
            return decode_b64(url, self.name)
        target, base = httpx.URL(url), httpx.URL(self._base)
        same_host = (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)
        if target.scheme != "https" and not same_host:
            raise ProviderError(
                f"replicate: refusing to download a non-https output URL ({target.scheme})",
                may_have_charged=True,
            )
        response = await self._http.request(
            "GET", url, headers=headers if same_host else None, idempotent=True
        )
        return response.content

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProviderError("replicate: the answer was not a JSON object", may_have_charged=True)
        return body

    async def aclose(self) -> None:
        """The client belongs to the composition root; nothing to close here."""
