"""A fake Stability AI v2beta Stable Image API (generate core/ultra/sd3, edit/inpaint).

Multipart only, like the real one (a JSON or urlencoded body is a 400). With
`accept: application/json` it answers `{"image": b64, "seed", "finish_reason"}`; with
`accept: image/*` the raw PNG plus `seed` / `finish-reason` headers. Errors are
`{"id", "name", "errors": [...]}`; content moderation is a 403 `content_moderation`.
"""

from __future__ import annotations

import base64
import io
import random
import uuid

from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.common import FakeProvider, make_png

__all__ = ["RATIO_SIZES", "StabilityFake"]

RATIO_SIZES = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "21:9": (1536, 640),
    "9:21": (640, 1536),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "5:4": (1088, 896),
    "4:5": (896, 1088),
}
SD3_MODELS = {
    "sd3.5-large",
    "sd3.5-large-turbo",
    "sd3.5-medium",
    "sd3-large",
    "sd3-large-turbo",
    "sd3-medium",
}


class StabilityFake(FakeProvider):
    name = "stability"

    def __init__(self, *, key: str = "test-key") -> None:
        super().__init__(key=key)
        #: Answer with finish_reason CONTENT_FILTERED (a charged, blurred result) instead of SUCCESS.
        self.filtered = False

    @staticmethod
    def env(base_url: str) -> dict[str, str]:
        return {"STABILITY_BASE_URL": base_url.rstrip("/"), "STABILITY_API_KEY": "test-key"}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v2beta/stable-image/generate/{service}", self.generate, methods=["POST"]),
            Route("/v2beta/stable-image/edit/inpaint", self.inpaint, methods=["POST"]),
        ]

    def error(self, status: int, message: str, code: str) -> Response:
        names = {
            401: "unauthorized",
            402: "payment_required",
            429: "rate_limit_exceeded",
            500: "internal_error",
            503: "service_unavailable",
        }
        return JSONResponse(
            {"id": uuid.uuid4().hex, "name": names.get(status, "bad_request"), "errors": [message]},
            status_code=status,
        )

    def content_policy_error(self) -> Response:
        return JSONResponse(
            {
                "id": uuid.uuid4().hex,
                "name": "content_moderation",
                "errors": [
                    "Your request was flagged by our content moderation system, as a result your request was "
                    "denied and you were not charged."
                ],
            },
            status_code=403,
        )

    def _answer(self, request: Request, width: int, height: int, prompt: str, seed: str | None) -> Response:
        used = int(seed) if seed and seed != "0" else random.randint(1, 4294967294)
        png = make_png(width, height, prompt)
        finish = "CONTENT_FILTERED" if self.filtered else "SUCCESS"
        if request.headers.get("accept", "").startswith("image/"):
            return Response(png, media_type="image/png", headers={"seed": str(used), "finish-reason": finish})
        return JSONResponse({"image": base64.b64encode(png).decode(), "seed": used, "finish_reason": finish})

    async def _checked(self, request: Request) -> tuple[dict[str, str], dict[str, bytes], Response | None]:
        rec, refusal = await self.gate(request)
        if refusal is not None:
            return rec.form, rec.files, refusal
        if not rec.content_type.startswith("multipart/form-data"):
            return (
                rec.form,
                rec.files,
                self.error(400, "content-type: must be multipart/form-data", "bad_request"),
            )
        accept = request.headers.get("accept", "")
        if accept not in ("application/json", "image/*", "image/png"):
            return (
                rec.form,
                rec.files,
                self.error(400, "accept: must be image/* or application/json", "bad_request"),
            )
        if not rec.form.get("prompt"):
            return rec.form, rec.files, self.error(400, "prompt: cannot be empty", "bad_request")
        return rec.form, rec.files, None

    async def generate(self, request: Request) -> Response:
        form, files, refusal = await self._checked(request)
        if refusal is not None:
            return refusal
        service = request.path_params["service"]
        if service not in ("core", "ultra", "sd3"):
            return self.error(404, f"unknown service {service}", "not_found")
        if service == "sd3" and form.get("model", "sd3.5-large") not in SD3_MODELS:
            return self.error(400, f"model: must be one of {sorted(SD3_MODELS)}", "bad_request")
        image_to_image = "image" in files
        if service == "core" and image_to_image:
            return self.error(400, "image: not supported by core", "bad_request")
        if service == "sd3" and (form.get("mode", "text-to-image") == "image-to-image") != image_to_image:
            return self.error(400, "mode: image-to-image requires image and strength", "bad_request")
        if image_to_image:
            if "strength" not in form:
                return self.error(400, "strength: required for image-to-image", "bad_request")
            width, height = Image.open(io.BytesIO(files["image"])).size
        else:
            ratio = form.get("aspect_ratio", "1:1")
            if ratio not in RATIO_SIZES:
                return self.error(400, f"aspect_ratio: must be one of {list(RATIO_SIZES)}", "bad_request")
            width, height = RATIO_SIZES[ratio]
        return self._answer(request, width, height, form["prompt"], form.get("seed"))

    async def inpaint(self, request: Request) -> Response:
        form, files, refusal = await self._checked(request)
        if refusal is not None:
            return refusal
        if "image" not in files:
            return self.error(400, "image: required", "bad_request")
        width, height = Image.open(io.BytesIO(files["image"])).size
        return self._answer(request, width, height, form["prompt"], form.get("seed"))
