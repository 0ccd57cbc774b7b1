"""What every fake provider shares: recording requests, scripted failures, auth, real PNGs."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

__all__ = ["Failure", "FakeProvider", "Recorded", "make_png"]


def make_png(width: int, height: int, text: str = "", *, alpha: bool = False) -> bytes:
    """A real PNG of that size whose colour follows `text` (so different prompts give different images)."""
    digest = hashlib.sha256(text.encode()).digest()
    colour = (digest[0], digest[1], digest[2])
    image = Image.new("RGBA" if alpha else "RGB", (width, height), colour + ((255,) if alpha else ()))
    # A second colour block so the image is not a flat fill (a real decoder has something to do).
    block = Image.new(
        image.mode, (max(1, width // 4), max(1, height // 4)), (digest[3], digest[4], digest[5])
    )
    image.paste(block, (width // 8, height // 8))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass
class Recorded:
    """One request as the fake received it: JSON body, or multipart text fields and files."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    content_type: str = ""

    @property
    def prompt(self) -> str | None:
        if isinstance(self.json, dict):
            body = self.json.get("input", self.json)
            if isinstance(body, dict) and isinstance(body.get("prompt"), str):
                return body["prompt"]
        return self.form.get("prompt")


@dataclass
class Failure:
    status: int
    remaining: int
    retry_after: str | None = None
    on: str | None = None
    quota: bool = False


class FakeProvider:
    """Base class. Subclasses give `routes()` and `error(status, message, code)` in their format."""

    name = "fake"
    #: The Authorization value a request must carry; None means no auth (A1111).
    auth_header: str | None = "authorization"

    def __init__(self, *, key: str = "test-key") -> None:
        self.key = key
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        #: Seconds every gated call sleeps before answering (slow provider).
        self.delay = 0.0
        #: Answer every gated call with the provider's content-policy refusal.
        self.content_policy = False
        self.app = Starlette(routes=self.routes())

    # ---- what tests use -------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: str | None = None,
        on: str | None = None,
        quota: bool = False,
    ) -> None:
        """The next `times` gated calls (whose path contains `on`, if given) answer HTTP `status`."""
        self.failures.append(Failure(status, times, retry_after, on, quota))

    def client(self, base_url: str = "") -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=base_url)

    def calls(self, path_part: str) -> list[Recorded]:
        return [r for r in self.requests if path_part in r.path]

    @staticmethod
    def env(base_url: str) -> dict[str, str]:
        raise NotImplementedError

    # ---- for subclasses -------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def error(self, status: int, message: str, code: str) -> Response:
        return JSONResponse({"error": {"message": message, "code": code}}, status_code=status)

    def content_policy_error(self) -> Response:
        return self.error(400, "Your request was rejected by the safety system.", "content_policy_violation")

    async def record(self, request: Request) -> Recorded:
        content_type = request.headers.get("content-type", "")
        rec = Recorded(request.method, request.url.path, dict(request.headers), content_type=content_type)
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    rec.files[key] = await value.read()
                else:
                    rec.form[key] = str(value)
        else:
            raw = await request.body()
            if raw:
                try:
                    rec.json = json.loads(raw)
                except ValueError:
                    rec.json = None
        self.requests.append(rec)
        return rec

    async def gate(self, request: Request) -> tuple[Recorded, Response | None]:
        """Record the request, then apply delay, auth, scripted failures and content policy."""
        rec = await self.record(request)
        if self.delay:
            await anyio.sleep(self.delay)
        if self.auth_header is not None and request.headers.get(self.auth_header) != f"Bearer {self.key}":
            return rec, self.error(401, "Incorrect API key provided: sk-abc********wxyz.", "invalid_api_key")
        for failure in self.failures:
            if failure.remaining > 0 and (failure.on is None or failure.on in request.url.path):
                failure.remaining -= 1
                response = self.failure_response(failure)
                if failure.retry_after is not None:
                    response.headers["Retry-After"] = failure.retry_after
                return rec, response
        if self.content_policy:
            return rec, self.content_policy_error()
        return rec, None

    def failure_response(self, failure: Failure) -> Response:
        messages = {
            401: ("Incorrect API key provided.", "invalid_api_key"),
            402: ("Payment required: insufficient_balance.", "payment_required"),
            429: ("Rate limit reached for requests.", "rate_limit_exceeded"),
            500: ("The server had an error while processing your request.", "server_error"),
            503: ("The engine is currently overloaded, please try again later.", "overloaded"),
        }
        if failure.quota:
            return self.error(failure.status, "You exceeded your current quota.", "insufficient_quota")
        message, code = messages.get(failure.status, ("Injected failure.", "injected"))
        return self.error(failure.status, message, code)
