"""A client that goes away mid-request is logged as one INFO line naming what it left (issue 15).

A client dropping is routine (a closed laptop, a killed Claude Desktop, a cancelled `curl`), not a server
fault, so it is never an ERROR and never a traceback. The line names the transport and each request
that was in flight, the way a person reading the log would look for it:

    stdio: client went away during tools/call generate_image (request 7)
    http: client went away during tools/call search_memories (request 3) in session 1f2e3d4c, before its body arrived

Where the noise came from, and where it is stopped, is said at each place: `StdioReplies` in
`server/stdio.py` (the SDK's stdout writer let a `BrokenPipeError` escape its task group, ending the
process with an exception-group traceback), `HttpFrameGuard` in `server/frames.py` (the SDK's Streamable
HTTP handler logged `starlette.requests.ClientDisconnect` at ERROR with a traceback when the body stopped
short). Both are our transport wiring; no logger is filtered.
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["describe_frame", "describe_partial", "is_gone", "went_away"]

log = logging.getLogger(__name__)

_METHOD = re.compile(rb'"method"\s*:\s*"([^"\\]{1,100})"')
_NAME = re.compile(rb'"name"\s*:\s*"([^"\\]{1,100})"')
_ID = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"[^"\\]{0,200}")')
#: What a write to a peer that has gone away raises: EPIPE/ECONNRESET on POSIX, EINVAL for a closed pipe on Windows.
_GONE_ERRNOS = {errno.EPIPE, errno.ECONNRESET, errno.EINVAL, errno.ESHUTDOWN, errno.ECONNABORTED}


def is_gone(exc: BaseException) -> bool:
    """Whether a write failed because the other end has closed (as opposed to a real I/O fault)."""
    if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
        return True
    return isinstance(exc, OSError) and exc.errno in _GONE_ERRNOS


def _request(method: str, name: str | None, rid: object) -> str:
    what = f"{method} {name}" if name else method
    return what if rid is None else f"{what} (request {rid!r})" if isinstance(rid, str) else f"{what} (request {rid})"


def describe_frame(frame: Mapping[str, Any]) -> str:
    """'tools/call generate_image (request 7)' for a parsed request frame."""
    params = frame.get("params")
    name = None
    if isinstance(params, Mapping):
        value = params.get("name") if frame.get("method") in ("tools/call", "prompts/get") else params.get("uri")
        name = str(value)[:100] if value is not None else None
    return _request(str(frame.get("method")), name, frame.get("id"))


def describe_partial(raw: bytes | bytearray) -> str:
    """The same from the start of a body that never arrived whole: what can be read of it, or 'a request'."""
    head = bytes(raw[:8192])
    method = _METHOD.search(head)
    if method is None:
        return "a request"
    name = _NAME.search(head) if method.group(1) in (b"tools/call", b"prompts/get") else None
    rid = _ID.search(head)
    token = rid.group(1).decode("utf-8", "replace") if rid else None
    parsed: object = None if token is None else token[1:-1] if token.startswith('"') else int(token)
    return _request(method.group(1).decode("utf-8", "replace"), name.group(1).decode("utf-8", "replace") if name else None,
                    parsed)


def went_away(transport: str, requests: Iterable[str], detail: str = "") -> None:
    """The one INFO line for a client that left; `requests` are `describe_*` texts of what was in flight."""
    listed = ", ".join(requests)
    where = f" during {listed}" if listed else " with no request in flight"
    log.info("%s: client went away%s%s", transport, where, f" {detail}" if detail else "")
