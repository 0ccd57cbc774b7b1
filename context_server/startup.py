"""When background start-up work may begin: once the client's first real request has been answered, so it
never delays that answer, or after a fallback when the client asks nothing. Used by the App's warm-up
(model, index) and by the stdio server's deferred opening of the App itself (`server/deferred.py`).

Imports nothing heavy: the stdio server uses it before any of the App's modules are loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator

__all__ = ["ANSWER_FLUSH_SECONDS", "FIRST_ANSWER_FALLBACK_SECONDS", "after_first_answer", "command_start",
           "models_built_on_first_use", "started"]

#: A client that sends nothing after the handshake still gets its background work started after this.
FIRST_ANSWER_FALLBACK_SECONDS = 3.0
#: The middleware that reports an answer runs before the transport writes it; this lets it reach the client.
ANSWER_FLUSH_SECONDS = 0.05


#: The cyclic collector's thresholds while a command starts (`command_start`), and after (`started`). A start
#: imports thousands of objects that live as long as the process (the SDK's protocol models, ours, Chroma's)
#: and frees few: at the default thresholds the collector walked that growing heap again and again, its full
#: collections most of all. `context-server demo`: 6.1 s of CPU on average at the default thresholds, 5.6 s
#: with these (both with deferred model builds; docs/benchmarks.md, "The test suite", fifth pass).
START_GC_THRESHOLDS = (100_000, 50, 100)
RUNTIME_GC_THRESHOLDS = gc.get_threshold()


@contextlib.contextmanager
def command_start() -> Iterator[None]:
    """For the whole run of the `context-server` command in a process of its own (`cli.run`): pydantic models
    built on first use (`models_built_on_first_use`), and the collector at `START_GC_THRESHOLDS` until the
    command says its start-up is over (`started`). Not for callers running the CLI inside their own process."""
    gc.set_threshold(*START_GC_THRESHOLDS)
    try:
        with models_built_on_first_use():
            yield
    finally:
        gc.set_threshold(*RUNTIME_GC_THRESHOLDS)


def started() -> None:
    """A long-running server is built: what start-up made is frozen out of later collections, and the collector
    runs at its usual thresholds from here on."""
    gc.freeze()
    gc.set_threshold(*RUNTIME_GC_THRESHOLDS)


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
