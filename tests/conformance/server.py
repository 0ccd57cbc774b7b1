"""The production HTTP server plus the fixtures the MCP conformance suite calls (test-only).

    python -m tests.conformance.server --port 3001

Everything the suite talks to is the real wiring (`build_http_app`: Host/Origin guard, body cap,
session manager, audit middleware, context-server's own tools, resources and prompts); this module only
`extend`s it with the `test_*` tools, `test://` resources and `test_*` prompts that the suite's server
scenarios name. It serves on loopback without tokens because the suite's client cannot send one;
tokens are covered by tests/test_http.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import click
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from mcp.types import (
    AudioContent,
    CallToolResult,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field

from context_server.app import App
from context_server.server.http import serve_http
from context_server.server.mcp_server import ContextServer
from context_server.settings import Settings

log = logging.getLogger("conformance")

PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_EMPTY = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="


class UserResponse(BaseModel):
    response: str = Field(default="", description="The user's answer")


class Defaults(BaseModel):
    """SEP-1034: a default for every primitive type."""

    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(default="active", description="User status",
                        json_schema_extra={"enum": ["active", "inactive", "pending"]})
    verified: bool = Field(default=True, description="Verification status")


class Enums(BaseModel):
    """SEP-1330: the enum schema variants."""

    untitledSingle: str = Field(description="Simple enum", json_schema_extra={"enum": ["active", "inactive", "pending"]})
    titledSingle: str = Field(description="Titled enum", json_schema_extra={"oneOf": [
        {"const": "low", "title": "Low Priority"}, {"const": "medium", "title": "Medium Priority"},
        {"const": "high", "title": "High Priority"}]})
    untitledMulti: list[str] = Field(description="Multi-select", json_schema_extra={
        "items": {"type": "string", "enum": ["read", "write", "execute"]}})
    titledMulti: list[str] = Field(description="Titled multi-select", json_schema_extra={"items": {"anyOf": [
        {"const": "feature", "title": "New Feature"}, {"const": "bug", "title": "Bug Fix"},
        {"const": "docs", "title": "Documentation"}]}})
    legacyEnum: str = Field(description="Legacy enumNames", json_schema_extra={
        "enum": ["small", "medium", "large"], "enumNames": ["Small Size", "Medium Size", "Large Size"]})


def _content(*blocks: Any) -> CallToolResult:
    return CallToolResult(content=list(blocks))


def add_fixtures(server: ContextServer) -> None:
    """Register what the suite's server scenarios call, next to context-server's own surface."""

    def test_simple_text() -> str:
        """Returns simple text."""
        return "This is a simple text response for testing."

    def test_image_content() -> CallToolResult:
        """Returns an image."""
        return _content(ImageContent(type="image", data=PNG_1PX, mime_type="image/png"))

    def test_audio_content() -> CallToolResult:
        """Returns audio."""
        return _content(AudioContent(type="audio", data=WAV_EMPTY, mime_type="audio/wav"))

    def test_embedded_resource() -> CallToolResult:
        """Returns an embedded resource."""
        return _content(EmbeddedResource(type="resource", resource=TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content.")))

    def test_multiple_content_types() -> CallToolResult:
        """Returns text, an image and a resource."""
        return _content(
            TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=PNG_1PX, mime_type="image/png"),
            EmbeddedResource(type="resource", resource=TextResourceContents(
                uri="test://mixed-content-resource", mime_type="application/json", text='{"test": "data"}')))

    async def test_tool_with_logging(ctx: Context) -> str:
        """Sends three log messages."""
        for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
            await ctx.info(message)
            await asyncio.sleep(0.05)
        return "Tool with logging executed successfully"

    async def test_tool_with_progress(ctx: Context) -> str:
        """Reports progress 0, 50, 100 of 100."""
        for step in (0, 50, 100):
            await ctx.report_progress(step, 100, f"Completed step {step} of 100")
            await asyncio.sleep(0.05)
        return "Tool with progress executed successfully"

    async def test_sampling(ctx: Context, prompt: str = Field(description="The prompt to send")) -> str:
        """Asks the client's LLM."""
        # related_request_id puts the request on this call's own SSE stream; without it the request
        # goes to the standalone GET stream, which the client may not have opened yet (a lost request).
        result = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=100,
            related_request_id=ctx.request_id)
        text = result.content.text if isinstance(result.content, TextContent) else "No response"
        return f"LLM response: {text}"

    async def test_elicitation(ctx: Context, message: str = Field(description="What to ask")) -> str:
        """Asks the user."""
        result = await ctx.elicit(message=message, schema=UserResponse)
        return f"User response: action={result.action}"

    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        """Asks with defaults for every primitive type."""
        result = await ctx.elicit(message="Please provide user information", schema=Defaults)
        data = result.data.model_dump_json() if result.action == "accept" else "{}"
        return f"Elicitation result: action={result.action}, content={data}"

    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        """Asks with every enum schema variant."""
        result = await ctx.elicit(message="Please select values", schema=Enums)
        data = result.data.model_dump_json() if result.action == "accept" else "{}"
        return f"Elicitation completed: action={result.action}, content={data}"

    def test_error_handling() -> str:
        """Always fails."""
        raise RuntimeError("This tool intentionally returns an error for testing")

    async def test_reconnection(ctx: Context) -> str:
        """Closes its SSE stream mid-call (a no-op without an event store, which production does not run)."""
        await ctx.info("Before disconnect")
        await ctx.close_sse_stream()
        await asyncio.sleep(0.2)
        await ctx.info("After reconnect")
        return "Reconnection test completed"

    def json_schema_2020_12_tool(name: str = "", address: dict[str, Any] | None = None) -> str:
        """Tool with JSON Schema 2020-12 features"""
        return f"name={name}"

    for fn in (test_simple_text, test_image_content, test_audio_content, test_embedded_resource,
               test_multiple_content_types, test_tool_with_logging, test_tool_with_progress, test_sampling,
               test_elicitation, test_elicitation_sep1034_defaults, test_elicitation_sep1330_enums,
               test_error_handling, test_reconnection, json_schema_2020_12_tool):
        server.add_tool(fn, structured_output=False)
    # SEP-1613 asks that a hand-written 2020-12 schema reach the client untouched; the SDK derives
    # schemas from signatures, so this fixture replaces the derived one (test-only, private access).
    tool = server._tool_manager.get_tool("json_schema_2020_12_tool")
    assert tool is not None
    tool.parameters = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"},
                                                                "city": {"type": "string"}}}},
        "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
        "additionalProperties": False,
    }

    @server.resource("test://static-text", mime_type="text/plain", description="A static text resource")
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource("test://static-binary", mime_type="image/png", description="A static binary resource")
    def static_binary() -> bytes:
        return base64.b64decode(PNG_1PX)

    @server.resource("test://template/{id}/data", mime_type="application/json", description="A template")
    def template_data(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.resource("test://watched-resource", mime_type="text/plain", description="A watched resource")
    def watched() -> str:
        return "Watched resource content"

    @server.prompt(description="A simple prompt without arguments")
    def test_simple_prompt() -> list[Message]:
        return [UserMessage(content=TextContent(type="text", text="This is a simple prompt for testing."))]

    @server.prompt(description="A prompt with required arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[Message]:
        return [UserMessage(content=TextContent(type="text", text=f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]

    @server.prompt(description="A prompt with an embedded resource")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[Message]:
        return [UserMessage(content=EmbeddedResource(type="resource", resource=TextResourceContents(
                    uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."))),
                UserMessage(content=TextContent(type="text", text="Please process the embedded resource above."))]

    @server.prompt(description="A prompt with an image")
    def test_prompt_with_image() -> list[Message]:
        return [UserMessage(content=ImageContent(type="image", data=PNG_1PX, mime_type="image/png")),
                UserMessage(content=TextContent(type="text", text="Please analyze the image above."))]

    async def accept(ctx: Any, params: Any) -> EmptyResult:
        log.info("%s %s", ctx.method, getattr(params, "uri", getattr(params, "level", "")))
        return EmptyResult()

    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, accept)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, accept)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, accept)


@click.command()
@click.option("--port", default=3001, show_default=True)
@click.option("--home", type=click.Path(path_type=Path), default=None, help="Data directory (default: a temp dir).")
def main(port: int, home: Path | None) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    home = home or Path(tempfile.mkdtemp(prefix="context-server-conformance-"))
    app = App.create(Settings.from_env({"CONTEXT_SERVER_HOME": str(home)}))

    async def run() -> None:
        try:
            await serve_http(app, host="127.0.0.1", port=port, auth=False, extend=add_fixtures)
        finally:
            await app.aclose()

    anyio.run(run)


if __name__ == "__main__":
    main()
