"""When background start-up work may begin: once the client's first real request has been answered, so it
never delays that answer, or after a fallback when the client asks nothing. Used by the App's warm-up
(model, index) and by the stdio server's deferred opening of the App itself (`server/deferred.py`).

Imports nothing heavy: the stdio server uses it before any of the App's modules are loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

__all__ = ["ANSWER_FLUSH_SECONDS", "FIRST_ANSWER_FALLBACK_SECONDS", "after_first_answer",
           "models_built_on_first_use"]

#: A client that sends nothing after the handshake still gets its background work started after this.
FIRST_ANSWER_FALLBACK_SECONDS = 3.0
#: The middleware that reports an answer runs before the transport writes it; this lets it reach the client.
ANSWER_FLUSH_SECONDS = 0.05


async def after_first_answer(answered: asyncio.Event, fallback: float = FIRST_ANSWER_FALLBACK_SECONDS) -> None:
    """Return once `answered` is set (and the answer has had time to go out), or after `fallback` seconds."""
    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
        await asyncio.wait_for(answered.wait(), fallback)
    await asyncio.sleep(ANSWER_FLUSH_SECONDS)


@contextlib.contextmanager
def models_built_on_first_use() -> Iterator[None]:
    """Pydantic models defined inside this block build their validators and serializers when first used
    instead of when defined (pydantic's `defer_build`, made the default for the block).

    The stdio server imports the `mcp` SDK, which defines some 550 protocol models, and answers its first
    requests with a dozen of them; building the rest up front cost ~75 ms p50 and ~130 ms p95 of a 1.5 s
    cold start (docs/benchmarks.md). Nothing else changes: a deferred model builds the same schema on first
    use, and models defined after the block build eagerly as before.

    Only with a pydantic whose deferred rebuilds are thread-safe (`pydantic.main._rebuild_lock`, 2.14+): the
    server validates on worker threads, and an unlocked first use from two threads at once could validate
    with the parent class's validator. Otherwise, or if pydantic's internals moved, this does nothing.
    """
    try:
        from pydantic import main as pydantic_main
        from pydantic._internal import _config
    except ImportError:  # pragma: no cover - pydantic is a dependency of the SDK
        yield
        return
    defaults = getattr(_config, "config_defaults", None)
    if not hasattr(pydantic_main, "_rebuild_lock") or not isinstance(defaults, dict) or "defer_build" not in defaults:
        yield
        return
    previous = defaults["defer_build"]
    defaults["defer_build"] = True
    try:
        yield
    finally:
        defaults["defer_build"] = previous
