"""Every `tools/call`, on any transport, leaves one audit row: user, tool, outcome and duration.

It is a `ServerMiddleware`, so it sees calls the SDK rejects before a tool runs (unknown tool, invalid
arguments) as well as the tool's own errors, and no tool can forget to record itself.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import CallToolResult

from context_server.server.auth import current_user

if TYPE_CHECKING:
    from context_server.app import App

__all__ = ["AuditMiddleware"]

log = logging.getLogger(__name__)


def _is_error(result: HandlerResult) -> bool:
    if isinstance(result, CallToolResult):
        return result.is_error
    if isinstance(result, dict):
        return bool(result.get("isError") or result.get("is_error"))
    return False


class AuditMiddleware:
    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call" or ctx.request_id is None:
            return await call_next(ctx)
        name = (ctx.params or {}).get("name")
        tool = name if isinstance(name, str) else "?"
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await call_next(ctx)
            outcome = "error" if _is_error(result) else "ok"
            return result
        finally:
            # Queued, not written: the audit's writer thread commits it with the rows of other calls, so the
            # reply waits for no fsync and no other writer (domain/audit.py).
            self._record(tool, outcome, (time.perf_counter() - started) * 1000)

    def _record(self, tool: str, outcome: str, duration_ms: float) -> None:
        try:
            self.app.audit.record(current_user(self.app), tool, "ok" if outcome == "ok" else "error", duration_ms)
        except Exception:  # the audit must never turn a finished call into a failure
            log.exception("could not record the audit row for tool %r", tool)
