"""A fake Replicate HTTP API: predictions that move through starting -> processing -> succeeded.

- `POST /v1/models/{owner}/{name}/predictions` and `POST /v1/predictions` (with `version`) create a
  prediction (201) in `starting`;
- each `GET /v1/predictions/{id}` advances it one step; after `polls_to_finish` polls it has
  `succeeded` with `output` a list of file URLs served by this fake (`/files/{id}.png`), or
  `failed` with `error` when `fail_with` is set;
- `POST /v1/predictions/{id}/cancel` cancels it.
Errors look like Replicate's: `{"title", "detail", "status"}`.
"""

from __future__ import annotations

import base64
import io
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.common import FakeProvider, make_png

__all__ = ["ReplicateFake"]

RATIO_SIZES = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "21:9": (1568, 672),
    "9:21": (672, 1568),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "4:3": (1152, 896),
    "3:4": (896, 1152),
    "5:4": (1088, 896),
    "4:5": (896, 1088),
}


def _image_size(data_uri: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(data_uri.partition(",")[2]))).size


class ReplicateFake(FakeProvider):
    name = "replicate"

    def __init__(self, *, key: str = "test-key", polls_to_finish: int = 3) -> None:
        super().__init__(key=key)
        self.polls_to_finish = polls_to_finish
        #: When set, predictions end `failed` with this error instead of succeeding.
        self.fail_with: str | None = None
        self.predictions: dict[str, dict[str, Any]] = {}
        self._polls: dict[str, int] = {}
        self._sizes: dict[str, tuple[int, int]] = {}

    @staticmethod
    def env(base_url: str) -> dict[str, str]:
        return {"REPLICATE_BASE_URL": f"{base_url.rstrip('/')}/v1", "REPLICATE_API_TOKEN": "test-key"}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/models/{owner}/{name}/predictions", self.create_for_model, methods=["POST"]),
            Route("/v1/predictions", self.create_for_version, methods=["POST"]),
            Route("/v1/predictions/{id}", self.get, methods=["GET"]),
            Route("/v1/predictions/{id}/cancel", self.cancel, methods=["POST"]),
            Route("/files/{id}.png", self.file, methods=["GET"]),
        ]

    def error(self, status: int, message: str, code: str) -> Response:
        titles = {
            401: "Unauthenticated",
            402: "Insufficient credit",
            404: "Not found",
            422: "Input validation failed",
            429: "Request was throttled.",
        }
        return JSONResponse(
            {"title": titles.get(status, "Internal server error"), "detail": message, "status": status},
            status_code=status,
        )

    def content_policy_error(self) -> Response:
        return self.error(422, "NSFW content detected in the prompt.", "nsfw")

    async def _create(self, request: Request, model: str, version: str | None) -> Response:
        rec, refusal = await self.gate(request)
        if refusal is not None:
            return refusal
        body = rec.json if isinstance(rec.json, dict) else {}
        data = body.get("input")
        if not isinstance(data, dict) or not data.get("prompt"):
            return self.error(422, "input.prompt: Missing required field", "invalid")
        prediction_id = uuid.uuid4().hex[:26]
        base = str(request.base_url).rstrip("/")
        if "image" in data:
            self._sizes[prediction_id] = _image_size(str(data["image"]))
        else:
            self._sizes[prediction_id] = RATIO_SIZES.get(str(data.get("aspect_ratio", "1:1")), (1024, 1024))
        self.predictions[prediction_id] = {
            "id": prediction_id,
            "model": model,
            "version": version or "hidden",
            "input": data,
            "logs": "",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": "starting",
            "created_at": datetime.now(UTC).isoformat(),
            "urls": {
                "get": f"{base}/v1/predictions/{prediction_id}",
                "cancel": f"{base}/v1/predictions/{prediction_id}/cancel",
            },
        }
        self._polls[prediction_id] = 0
        return JSONResponse(self.predictions[prediction_id], status_code=201)

    async def create_for_model(self, request: Request) -> Response:
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        return await self._create(request, model, None)

    async def create_for_version(self, request: Request) -> Response:
        raw = await request.json()
        version = str(raw.get("version", "")) if isinstance(raw, dict) else ""
        if not version:
            return self.error(422, "version: Missing required field", "invalid")
        return await self._create(request, version.partition(":")[0], version)

    async def get(self, request: Request) -> Response:
        _, refusal = await self.gate(request)
        if refusal is not None:
            return refusal
        prediction = self.predictions.get(request.path_params["id"])
        if prediction is None:
            return self.error(404, "The requested resource could not be found.", "not_found")
        if prediction["status"] in ("succeeded", "failed", "canceled"):
            return JSONResponse(prediction)
        pid = prediction["id"]
        self._polls[pid] += 1
        step = self._polls[pid]
        seed = prediction["input"].get("seed") or random.randint(1, 65535)
        if step >= self.polls_to_finish:
            if self.fail_with:
                prediction.update(status="failed", error=self.fail_with)
            else:
                base = str(request.base_url).rstrip("/")
                prediction.update(
                    status="succeeded", output=[f"{base}/files/{pid}.png"], metrics={"predict_time": 1.2}
                )
                prediction["logs"] += "100%|##########| 4/4 [00:01<00:00]\n"
        else:
            percent = int(100 * step / self.polls_to_finish)
            if not prediction["logs"]:
                prediction["logs"] = f"Using seed: {seed}\n"
            prediction["logs"] += f"{percent:3d}%|#####     | {step}/{self.polls_to_finish} [00:01<00:01]\n"
            prediction["status"] = "processing"
        return JSONResponse(prediction)

    async def cancel(self, request: Request) -> Response:
        _, refusal = await self.gate(request)
        if refusal is not None:
            return refusal
        prediction = self.predictions.get(request.path_params["id"])
        if prediction is None:
            return self.error(404, "The requested resource could not be found.", "not_found")
        if prediction["status"] not in ("succeeded", "failed"):
            prediction["status"] = "canceled"
        return JSONResponse(prediction)

    async def file(self, request: Request) -> Response:
        pid = request.path_params["id"]
        prediction = self.predictions.get(pid)
        if prediction is None or prediction["status"] != "succeeded":
            return Response("not found", status_code=404)
        width, height = self._sizes[pid]
        return Response(
            make_png(width, height, str(prediction["input"].get("prompt"))), media_type="image/png"
        )
