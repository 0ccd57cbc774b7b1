"""A fake AUTOMATIC1111 web UI API: `/sdapi/v1/txt2img`, `/sdapi/v1/img2img`, `/sdapi/v1/progress`.

A generation takes `delay` seconds, stepping through `steps` sampling steps, and
`/sdapi/v1/progress` reports those steps while it runs, as the real web UI does. Answers
`{"images": [b64], "parameters": {...}, "info": "<JSON string with seed>"}`.
"""

from __future__ import annotations

import base64
import json
import random
import time

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.common import FakeProvider, Recorded, make_png

__all__ = ["SdWebUIFake"]


class SdWebUIFake(FakeProvider):
    name = "sd_webui"
    auth_header = None

    def __init__(self, *, key: str = "") -> None:
        super().__init__(key=key)
        self.step = 0
        self.steps = 0
        self.started = 0.0
        #: Every progress value the fake reported, so a test can see that polling overlapped the run.
        self.progress_reported: list[float] = []

    @staticmethod
    def env(base_url: str) -> dict[str, str]:
        return {"SD_WEBUI_URL": base_url.rstrip("/")}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/sdapi/v1/txt2img", self.txt2img, methods=["POST"]),
            Route("/sdapi/v1/img2img", self.img2img, methods=["POST"]),
            Route("/sdapi/v1/progress", self.progress, methods=["GET"]),
        ]

    def error(self, status: int, message: str, code: str) -> Response:
        if status == 422:
            return JSONResponse(
                {"detail": [{"loc": ["body"], "msg": message, "type": code}]}, status_code=422
            )
        return JSONResponse(
            {"error": "RuntimeError", "detail": "", "body": "", "errors": message}, status_code=status
        )

    async def _generate(self, request: Request, *, img2img: bool) -> Response:
        rec, refusal = await self._gate_without_delay(request)
        if refusal is not None:
            return refusal
        body = rec.json if isinstance(rec.json, dict) else None
        if body is None:
            return self.error(422, "body is not JSON", "value_error.jsondecode")
        if img2img and not body.get("init_images"):
            return self.error(422, "init_images: field required", "value_error.missing")
        width, height = int(body.get("width", 512)), int(body.get("height", 512))
        if width % 8 or height % 8:
            return self.error(500, f"width and height have to be divisible by 8 (got {width}x{height})", "")
        self.steps = int(body.get("steps", 20))
        self.started = time.monotonic()
        for step in range(1, self.steps + 1):
            self.step = step
            await anyio.sleep(self.delay / self.steps if self.delay else 0)
        self.steps = 0
        seed = int(body.get("seed", -1))
        if seed == -1:
            seed = random.randint(0, 2**32 - 1)
        png = make_png(width, height, str(body.get("prompt", "")))
        info = {
            "prompt": body.get("prompt", ""),
            "negative_prompt": body.get("negative_prompt", ""),
            "seed": seed,
            "all_seeds": [seed],
            "width": width,
            "height": height,
            "denoising_strength": body.get("denoising_strength"),
        }
        parameters = {k: v for k, v in body.items() if k not in ("init_images", "mask")}
        return JSONResponse(
            {"images": [base64.b64encode(png).decode()], "parameters": parameters, "info": json.dumps(info)}
        )

    async def _gate_without_delay(self, request: Request) -> tuple[Recorded, Response | None]:
        """The delay here is spent sampling (so progress can be watched), not before answering."""
        delay, self.delay = self.delay, 0.0
        try:
            return await self.gate(request)
        finally:
            self.delay = delay

    async def txt2img(self, request: Request) -> Response:
        return await self._generate(request, img2img=False)

    async def img2img(self, request: Request) -> Response:
        return await self._generate(request, img2img=True)

    async def progress(self, request: Request) -> Response:
        if self.steps:
            value = self.step / self.steps
            elapsed = time.monotonic() - self.started
            eta = elapsed / value - elapsed if value else 0.0
            self.progress_reported.append(value)
        else:
            value, eta = 0.0, 0.0
        return JSONResponse(
            {
                "progress": value,
                "eta_relative": eta,
                "state": {
                    "skipped": False,
                    "interrupted": False,
                    "job": "",
                    "job_count": 1 if self.steps else 0,
                    "job_timestamp": "0",
                    "job_no": 0,
                    "sampling_step": self.step,
                    "sampling_steps": self.steps,
                },
                "current_image": None,
                "textinfo": None,
            }
        )
