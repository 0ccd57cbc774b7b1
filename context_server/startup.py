"""When background start-up work may begin: once the client's first real request has been answered, so it
never delays that answer, or after a fallback when the client asks nothing. Used by the App's warm-up
(model, index) and by the stdio server's deferred opening of the App itself (`server/deferred.py`).

Imports nothing heavy: the stdio server uses it before any of the App's modules are loaded.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["ANSWER_FLUSH_SECONDS", "FIRST_ANSWER_FALLBACK_SECONDS", "after_first_answer"]

#: A client that sends nothing after the handshake still gets its background work started after this.
FIRST_ANSWER_FALLBACK_SECONDS = 3.0
#: The middleware that reports an answer runs before the transport writes it; this lets it reach the client.
ANSWER_FLUSH_SECONDS = 0.05


async def after_first_answer(answered: asyncio.Event, fallback: float = FIRST_ANSWER_FALLBACK_SECONDS) -> None:
    """Return once `answered` is set (and the answer has had time to go out), or after `fallback` seconds."""
    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
        await asyncio.wait_for(answered.wait(), fallback)
    await asyncio.sleep(ANSWER_FLUSH_SECONDS)
