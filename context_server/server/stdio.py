"""MCP over stdio through the SDK's transport, with stdin read by `StdioFrames`: bounded lines, and an error
for every line that is not a valid frame (the SDK alone drops those in silence; see docs/upstream.md)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from mcp.server import stdio as sdk_stdio
from mcp.shared.message import SessionMessage

from context_server.server.frames import DEFAULT_MAX_FRAME_BYTES, StdioFrames

if TYPE_CHECKING:
    from context_server.server.mcp_server import ContextServer

__all__ = ["serve_stdio"]


def _claim_stdin() -> tuple[BinaryIO, Callable[[], None] | None]:
    """The SDK's own claim on fd 0 (handlers and children then read EOF, never the wire) where it exists;
    stdin's buffer as it is otherwise. It is private to the SDK, so its absence is not an error."""
    claim = getattr(sdk_stdio, "_claim_fd", None)
    divert = getattr(sdk_stdio, "_open_stdin_diversion", None)
    if claim is None or divert is None:
        return sys.stdin.buffer, None
    source, release = claim(0, sys.stdin, "rb", divert)
    return cast("BinaryIO", source), release


async def serve_stdio(server: ContextServer, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
    """What `MCPServer.run_stdio_async` does, with our stdin in front of the SDK's reader."""
    source, release = _claim_stdin()
    try:
        frames = StdioFrames(source, max_frame_bytes)
        lowlevel = server._lowlevel_server
        async with sdk_stdio.stdio_server(stdin=cast("Any", frames)) as (read_stream, write_stream):

            async def reply(message: SessionMessage) -> None:
                await write_stream.send(message)

            frames.answer_with(reply)
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
    finally:
        if release is not None:
            release()
