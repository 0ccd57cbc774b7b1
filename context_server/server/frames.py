"""JSON-RPC frames checked before the SDK sees them, so every frame it cannot handle gets an error (SPEC §8).

The SDK (mcp 2.x) drops, in silence, a stdio line that is not a valid JSON-RPC message, and over HTTP it
takes a request whose id is a float or an object for a notification (202, no answer). `check_frame`
applies one rule set to both transports:

- not JSON (or nested too deep to parse) → -32700 Parse error, id null;
- JSON that is not one valid request, notification or response → -32600 Invalid request, with the id when
  it is an integer or a string (a float, object, array, boolean or null id is answered with id null).

`StdioFrames` reads stdin line by line with a bounded buffer (a frame past `max_bytes` is refused and
skipped without being held in memory), answers refused lines itself and passes the rest on;
`HttpFrameGuard` does the same for a POST body. See docs/upstream.md for the report to the SDK.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import anyio
import anyio.to_thread
import mcp_types as types
import pydantic_core
from mcp.shared.message import SessionMessage
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from context_server.server.dropped import describe_frame, describe_partial, went_away

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "FrameError", "HttpFrameGuard", "StdioFrames", "check_frame"]

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
#: The default cap on one stdio line (`CONTEXT_SERVER_MAX_FRAME_BYTES`), the same as an HTTP body's.
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
_CHUNK = 64 * 1024
# An oversized frame is never parsed; its id is read only where a client puts it, before any params.
_LEADING_ID = re.compile(rb'^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(-?\d{1,18}|"[^"\\]{0,200}")\s*,')


@dataclass(frozen=True)
class FrameError:
    """Why a frame was refused, as the JSON-RPC error that answers it."""

    code: int
    message: str
    id: int | str | None = None

    def as_json(self) -> str:
        return pydantic_core.to_json(
            {"jsonrpc": "2.0", "id": self.id, "error": {"code": self.code, "message": self.message}}).decode()

    def as_message(self) -> types.JSONRPCError:
        return types.JSONRPCError(jsonrpc="2.0", id=self.id, error=types.ErrorData(code=self.code, message=self.message))


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _readable_id(frame: dict[str, Any]) -> int | str | None:
    value = frame.get("id")
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None


def check_frame(raw: bytes | str) -> FrameError | None:
    """The error answering this frame, or None when the SDK can take it as it is."""
    return _checked(raw)[0]


def _checked(raw: bytes | str) -> tuple[FrameError | None, Any]:
    """`check_frame`'s answer and the parsed frame (None when it is not JSON)."""
    try:
        frame = pydantic_core.from_json(raw)
    except (ValueError, RecursionError) as exc:
        detail = "nested too deeply" if "recursion" in str(exc).lower() else "not valid JSON"
        return FrameError(PARSE_ERROR, f"Parse error: the frame is {detail}; send one JSON-RPC 2.0 object per line"), None
    return _check_parsed(frame), frame


def _check_parsed(frame: Any) -> FrameError | None:
    if isinstance(frame, list):
        what = "an empty batch" if not frame else "a batch"
        return FrameError(INVALID_REQUEST, f"Invalid request: {what}; MCP takes one JSON-RPC object per frame, "
                                           "batches are not supported")
    if not isinstance(frame, dict):
        return FrameError(INVALID_REQUEST, f"Invalid request: the frame is {_kind(frame)}; "
                                           "expected a JSON-RPC 2.0 object")
    rid = _readable_id(frame)

    def invalid(why: str) -> FrameError:
        return FrameError(INVALID_REQUEST, f"Invalid request: {why}", rid)

    if frame.get("jsonrpc") != "2.0":
        if "jsonrpc" not in frame:
            return invalid('"jsonrpc": "2.0" is missing')
        return invalid(f'"jsonrpc" must be "2.0", got {pydantic_core.to_json(frame["jsonrpc"]).decode()[:40]}')
    if "id" in frame and rid is None:
        return invalid(f'"id" must be an integer or a string, got {_kind(frame["id"])}'
                       + (" with a fraction" if isinstance(frame["id"], float) else ""))
    if "method" in frame:
        if not isinstance(frame["method"], str):
            return invalid(f'"method" must be a string, got {_kind(frame["method"])}')
        if "params" in frame and not isinstance(frame["params"], dict):
            return invalid(f'"params" must be an object (named parameters), got {_kind(frame["params"])}')
    elif "id" not in frame:
        return invalid('a request needs "method" (and "id"); a notification needs "method"')
    elif ("result" in frame) == ("error" in frame):
        return invalid('a frame without "method" is a response and needs exactly one of "result" or "error"')
    try:
        types.jsonrpc_message_adapter.validate_python(frame, by_name=False)
    except pydantic_core.ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        where = ".".join(str(part) for part in first["loc"][1:]) or "the frame"
        return invalid(f"{where}: {first['msg']}")
    return None


def _refused(error: FrameError, transport: str) -> None:
    log.warning("%s: refused a frame with %d (%s), id %s", transport, error.code, error.message,
                "null" if error.id is None else repr(error.id))


Reply = Callable[[SessionMessage], Awaitable[None]]


class StdioFrames:
    """stdin for the SDK's `stdio_server(stdin=...)`: yields only lines the SDK can take.

    A refused line is answered through `reply` (set once the server's write stream exists). Lines are read
    in chunks of 64 KiB, so memory stays at most `max_bytes` plus one chunk whatever the client sends.
    """

    def __init__(self, source: BinaryIO, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.source = source
        self.max_bytes = max_bytes
        self._reply: Reply | None = None
        self._ready = anyio.Event()
        #: Requests passed on and not answered yet, by id: 'tools/call generate_image (request 7)'.
        self.in_flight: dict[int | str, str] = {}
        #: stdin has reached its end (the client closed it, or exited).
        self.closed = False
        self._gone = False

    def answer_with(self, reply: Reply) -> None:
        self._reply = reply
        self._ready.set()

    async def _answer(self, error: FrameError) -> None:
        _refused(error, "stdio")
        await self._ready.wait()
        assert self._reply is not None
        await self._reply(SessionMessage(error.as_message()))

    async def _read(self) -> bytes:
        read = getattr(self.source, "read1", self.source.read)
        data: bytes = await anyio.to_thread.run_sync(read, _CHUNK, abandon_on_cancel=True)
        return data

    async def _lines(self) -> AsyncIterator[bytes | FrameError]:
        buffer = bytearray()
        skipping = False  # inside a line already refused for its size
        while True:
            chunk = await self._read()
            if not chunk:
                if buffer and not skipping:
                    yield bytes(buffer)
                return
            start = 0
            while (end := chunk.find(b"\n", start)) != -1:
                if not skipping:
                    buffer += chunk[start:end]
                    if len(buffer) > self.max_bytes:
                        yield self._too_big(buffer)
                    else:
                        yield bytes(buffer)
                buffer.clear()
                skipping = False
                start = end + 1
            if not skipping:
                buffer += chunk[start:]
                if len(buffer) > self.max_bytes:
                    yield self._too_big(buffer)
                    buffer.clear()
                    skipping = True

    def _too_big(self, head: bytearray) -> FrameError:
        match = _LEADING_ID.match(bytes(head[:4096]))
        rid: int | str | None = None
        if match is not None:
            token = match.group(1).decode("utf-8", "replace")
            rid = token[1:-1] if token.startswith('"') else int(token)
        return FrameError(INVALID_REQUEST, f"Invalid request: the frame is larger than {self.max_bytes:,} bytes, "
                                           "the most one stdio line may carry (CONTEXT_SERVER_MAX_FRAME_BYTES)", rid)

    async def __aiter__(self) -> AsyncIterator[str]:
        async for line in self._lines():
            if isinstance(line, FrameError):
                await self._answer(line)
                continue
            if not line.strip():
                continue  # a blank line carries no frame
            error, frame = _checked(line)
            if error is not None:
                await self._answer(error)
                continue
            self._track(frame)
            yield line.decode("utf-8", "replace")
        self.closed = True
        if self.in_flight:  # the SDK answers these "Connection closed" and stops
            self.went_away("stdin closed")

    def went_away(self, detail: str) -> None:
        """The one INFO line for a client gone with requests in flight (stdin ended, or stdout broke); once."""
        if not self._gone:
            self._gone = True
            went_away("stdio", self.in_flight.values(), f"({detail})")

    def _track(self, frame: dict[str, Any]) -> None:
        """Keep `in_flight` (requests not answered yet, for the log line of a client that goes away)."""
        if "method" not in frame:
            return
        if "id" in frame:
            self.in_flight[frame["id"]] = describe_frame(frame)
        elif frame["method"] == "notifications/cancelled" and isinstance(frame.get("params"), dict):
            cancelled = frame["params"].get("requestId")
            if isinstance(cancelled, (int, str)):
                self.in_flight.pop(cancelled, None)  # a cancelled request gets no answer


class HttpFrameGuard:
    """The same check for a Streamable HTTP POST body: a refused frame gets a 400 with the JSON-RPC error.

    Bodies over `max_bytes` are passed on unread past the cap, for the SDK's own 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
        if scope["type"] != "http" or scope["method"] != "POST" or not content_type.startswith(b"application/json"):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        held: list[Message] = []
        more = True
        while more and len(body) <= self.max_bytes:
            message = await receive()
            held.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)

        async def replay() -> Message:
            return held.pop(0) if held else await receive()

        if held and held[-1]["type"] == "http.disconnect":
            # The client left before its body arrived whole: nothing to answer. Passed on, the SDK would read
            # on into starlette's `ClientDisconnect` and log it at ERROR with a traceback (issue 15).
            went_away("http", [describe_partial(body)], f"{_session(scope)}before its body arrived")
            return
        frame: Any = None
        if not more and held and held[-1]["type"] == "http.request":
            error, frame = _checked(bytes(body))
            if error is not None:
                _refused(error, "http")
                await _send_json(send, 400, error.as_json().encode())
                return
        if isinstance(frame, dict) and "method" in frame and "id" in frame:
            await self._watched(scope, replay, send, describe_frame(frame))
        else:
            await self.app(scope, replay, send)

    async def _watched(self, scope: Scope, receive: Receive, send: Send, request: str) -> None:
        """Run a request, logging one INFO line if its client disconnects before the response is complete
        (the SDK's event stream listens for that, and then stops in silence)."""
        complete = False
        reported = False

        async def watched_send(message: Message) -> None:
            nonlocal complete
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True  # before the send: uvicorn answers every receive with a disconnect from here on
            await send(message)

        async def watched_receive() -> Message:
            nonlocal reported
            message = await receive()
            if message["type"] == "http.disconnect" and not complete and not reported:
                reported = True
                went_away("http", [request], _session(scope).rstrip(", "))
            return message

        await self.app(scope, watched_receive, watched_send)


def _session(scope: Scope) -> str:
    """'in session 1f2e3d4c, ' for a request in an MCP session, '' otherwise: enough to tell clients apart."""
    for name, value in scope.get("headers") or []:
        if name == b"mcp-session-id":
            return f"in session {value[:8].decode('ascii', 'replace')}, "
    return ""


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
