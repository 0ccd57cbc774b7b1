"""MCP over stdio through the SDK's transport, with stdin read by `StdioFrames`: bounded lines, and an error
for every line that is not a valid frame (the SDK alone drops those in silence; see docs/upstream.md).
stdout is written by `StdioReplies`, so a client that goes away is one INFO line, not a traceback."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import anyio.to_thread
from mcp.server import stdio as sdk_stdio
from mcp.shared.message import SessionMessage

from context_server.server.dropped import is_gone
from context_server.server.frames import DEFAULT_MAX_FRAME_BYTES, StdioFrames

if TYPE_CHECKING:
    from context_server.server.mcp_server import ContextServer

__all__ = ["StdioReplies", "serve_stdio"]

# The SDK writes `model_dump_json(by_alias=True, exclude_unset=True)`: "jsonrpc" first, then "id".
_ANSWER_ID = re.compile(r'^\{"jsonrpc":"2\.0","id":(-?\d{1,18}|"(?:[^"\\]|\\.){0,400}"),"(?:result|error)"')


def _claim(fd: int) -> tuple[BinaryIO, Callable[[], None] | None]:
    """The SDK's own claim on fd 0 / fd 1 (handlers and children then read EOF and write to stderr, never
    the wire) where it exists; the std stream's buffer as it is otherwise. It is private to the SDK, so its
    absence is not an error. (Passing our own stdin/stdout to `stdio_server` skips its claim.)"""
    claim = getattr(sdk_stdio, "_claim_fd", None)
    divert = getattr(sdk_stdio, "_open_stdin_diversion" if fd == 0 else "_open_stdout_diversion", None)
    stream = sys.stdin if fd == 0 else sys.stdout
    if claim is None or divert is None:
        return stream.buffer, None
    wire, release = claim(fd, stream, "rb" if fd == 0 else "wb", divert)
    return cast("BinaryIO", wire), release


class StdioReplies:
    """stdout for the SDK's `stdio_server(stdout=...)`, which calls `write(frame)` then `flush()`.

    Where the client has gone away (its end of the pipe closed: it exited, or was killed), the write fails
    with `BrokenPipeError`. The SDK's own writer lets that escape its task group and the process ends on
    an exception-group traceback; here it is one INFO line naming the requests that were in flight
    (`StdioFrames.went_away`, which says it once whether stdin's end or the broken pipe comes first), and
    later frames are dropped. The process ends as before, at stdin's end.
    """

    def __init__(self, wire: BinaryIO, frames: StdioFrames) -> None:
        self.wire = wire
        self.frames = frames
        self.gone = False
        self._pending: list[str] = []

    async def write(self, text: str) -> None:
        self._pending.append(text)

    async def flush(self) -> None:
        text = "".join(self._pending)
        self._pending.clear()
        if self.gone or not text:
            return
        try:
            await anyio.to_thread.run_sync(self._send, text.encode("utf-8"))
        except OSError as exc:
            if not is_gone(exc):
                raise
            self.gone = True
            self.frames.went_away("stdout closed")
            return
        answered = _ANSWER_ID.match(text)
        if answered is not None:
            self.frames.in_flight.pop(json.loads(answered.group(1)), None)

    def _send(self, data: bytes) -> None:
        self.wire.write(data)
        self.wire.flush()


async def serve_stdio(server: ContextServer, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
    """What `MCPServer.run_stdio_async` does, with our stdin in front of the SDK's reader."""
    source, release = _claim(0)
    release_stdout: Callable[[], None] | None = None
    try:
        wire, release_stdout = _claim(1)
        frames = StdioFrames(source, max_frame_bytes)
        replies = StdioReplies(wire, frames)
        lowlevel = server._lowlevel_server
        async with sdk_stdio.stdio_server(stdin=cast("Any", frames), stdout=cast("Any", replies)) as (
                read_stream, write_stream):

            async def reply(message: SessionMessage) -> None:
                await write_stream.send(message)

            frames.answer_with(reply)
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
    finally:
        if release_stdout is not None:
            release_stdout()
        if release is not None:
            release()
