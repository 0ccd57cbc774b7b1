"""A fake OpenAI Images API: `/v1/images/generations` (JSON) and `/v1/images/edits` (multipart).

Answers as the real API does: `{"created", "data": [{"b64_json", "revised_prompt"?}]}`, errors as
`{"error": {"message", "type", "code"}}`, and it rejects what the real API rejects (an unknown
parameter for gpt-image-1, a size the model does not take, a mask whose size differs from the
image or that has no alpha channel).
"""

from __future__ import annotations

import base64
import io
import time

from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.common import FakeProvider, make_png

__all__ = ["OpenAIFake"]

SIZES = {
    "gpt-image-1": {"1024x1024", "1536x1024", "1024x1536", "auto"},
    "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"},
}
GENERATION_PARAMS = {
    "gpt-image-1": {
        "model",
        "prompt",
        "n",
        "size",
        "quality",
        "output_format",
        "background",
        "moderation",
        "output_compression",
        "user",
    },
    "dall-e-3": {"model", "prompt", "n", "size", "quality", "response_format", "style", "user"},
}


class OpenAIFake(FakeProvider):
    name = "openai"

    @staticmethod
    def env(base_url: str) -> dict[str, str]:
        return {"OPENAI_BASE_URL": f"{base_url.rstrip('/')}/v1", "OPENAI_API_KEY": "test-key"}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/images/generations", self.generations, methods=["POST"]),
            Route("/v1/images/edits", self.edits, methods=["POST"]),
        ]

    def error(self, status: int, message: str, code: str) -> Response:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return JSONResponse(
            {"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status
        )

    def content_policy_error(self) -> Response:
        return JSONResponse(
            {
                "error": {
                    "message": "Your request was rejected as a result of our safety system.",
                    "type": "image_generation_user_error",
                    "param": None,
                    "code": "moderation_blocked",
                }
            },
            status_code=400,
        )

    def _answer(self, model: str, prompt: str, size: str) -> Response:
        width, height = (1024, 1024) if size == "auto" else map(int, size.split("x"))
        item: dict[str, object] = {"b64_json": base64.b64encode(make_png(width, height, prompt)).decode()}
        if model == "dall-e-3":
            item["revised_prompt"] = f"A detailed rendering of: {prompt}"
        body: dict[str, object] = {"created": int(time.time()), "data": [item]}
        if model == "gpt-image-1":
            body["usage"] = {"input_tokens": len(prompt.split()), "output_tokens": 4160, "total_tokens": 4200}
        return JSONResponse(body)

    async def generations(self, request: Request) -> Response:
        rec, refusal = await self.gate(request)
        if refusal is not None:
            return refusal
        body = rec.json if isinstance(rec.json, dict) else {}
        model = str(body.get("model", "dall-e-2"))
        if model not in SIZES:
            return self.error(400, f"Invalid model {model}.", "invalid_value")
        unknown = sorted(set(body) - GENERATION_PARAMS[model])
        if unknown:
            return self.error(400, f"Unknown parameter: '{unknown[0]}'.", "unknown_parameter")
        size = str(body.get("size", "1024x1024"))
        if size not in SIZES[model]:
            return self.error(400, f"Invalid size '{size}' for {model}.", "invalid_value")
        if model == "dall-e-3" and body.get("response_format") != "b64_json":
            return JSONResponse(
                {
                    "created": int(time.time()),
                    "data": [{"url": "https://files.example/img.png", "revised_prompt": body["prompt"]}],
                }
            )
        return self._answer(model, str(body.get("prompt", "")), size)

    async def edits(self, request: Request) -> Response:
        rec, refusal = await self.gate(request)
        if refusal is not None:
            return refusal
        if not rec.content_type.startswith("multipart/form-data"):
            return self.error(400, "Edits must be multipart/form-data.", "invalid_request")
        model = rec.form.get("model", "dall-e-2")
        if model != "gpt-image-1":
            return self.error(400, f"Edits are not supported for {model} here.", "invalid_value")
        if "image" not in rec.files or "prompt" not in rec.form:
            return self.error(400, "image and prompt are required.", "missing_required_parameter")
        image = Image.open(io.BytesIO(rec.files["image"]))
        if "mask" in rec.files:
            mask = Image.open(io.BytesIO(rec.files["mask"]))
            if mask.size != image.size:
                return self.error(
                    400, "Invalid mask: the mask must have the same dimensions as the image.", "invalid_value"
                )
            if mask.mode not in ("RGBA", "LA") and "transparency" not in mask.info:
                return self.error(400, "Invalid mask: the mask must have an alpha channel.", "invalid_value")
        size = rec.form.get("size", "1024x1024")
        if size not in SIZES[model]:
            return self.error(400, f"Invalid size '{size}'.", "invalid_value")
        return self._answer(model, rec.form["prompt"], size)
