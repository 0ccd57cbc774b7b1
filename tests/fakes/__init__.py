"""Fake provider servers that answer in each provider's real wire format.

Each fake is a class with a Starlette `app`, a `requests` list of what it received, and switches
to misbehave (`fail_next`, `delay`, `content_policy`). Use one in memory with `fake.client()`
(an `httpx.AsyncClient` over `httpx.ASGITransport`) or as a real local server with
`serve_in_thread(fake.app)`; `fake.env(base_url)` gives the environment variables that point the
server at it. `python -m tests.fakes <provider> --port N` runs one standalone.
"""

from __future__ import annotations

from tests.fakes.common import FakeProvider, Recorded, make_png
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.replicate_fake import ReplicateFake
from tests.fakes.sd_webui_fake import SdWebUIFake
from tests.fakes.server import serve_in_thread
from tests.fakes.stability_fake import StabilityFake

__all__ = [
    "FAKES",
    "FakeProvider",
    "OpenAIFake",
    "Recorded",
    "ReplicateFake",
    "SdWebUIFake",
    "StabilityFake",
    "make_png",
    "serve_in_thread",
]

#: Provider name -> fake class, as `python -m tests.fakes` and end-to-end tests look them up.
FAKES: dict[str, type[FakeProvider]] = {
    "openai": OpenAIFake,
    "stability": StabilityFake,
    "sd_webui": SdWebUIFake,
    "replicate": ReplicateFake,
}
