"""Callables tests hand to adapters in place of the real sleep / progress / submitted callbacks."""

from __future__ import annotations

import anyio.lowlevel

__all__ = ["ProgressLog", "RecordingSleep"]


class RecordingSleep:
    """Records each requested delay and returns at once (yielding to the event loop)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await anyio.lowlevel.checkpoint()


class ProgressLog:
    """Collects progress reports and submitted provider job ids."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.messages: list[str | None] = []
        self.submitted: list[str] = []

    async def progress(self, value: float, message: str | None) -> None:
        assert 0.0 <= value <= 1.0, value
        self.values.append(value)
        self.messages.append(message)

    async def submit(self, job_id: str) -> None:
        self.submitted.append(job_id)
