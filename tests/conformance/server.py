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
import hashlib
import hmac
import json
import logging
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import anyio
import click
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    AudioContent,
    CallToolResult,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    InputRequiredResult,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from mcp_types.jsonrpc import MISSING_REQUIRED_CLIENT_CAPABILITY
from pydantic import BaseModel, Field

from context_server.app import App
from context_server.server.http import serve_http
from context_server.server.mcp_server import ContextServer
from context_server.server.templates import notify_prompts_changed
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

    add_input_required_fixtures(server)

    async def accept(ctx: Any, params: Any) -> EmptyResult:
        log.info("%s %s", ctx.method, getattr(params, "uri", getattr(params, "level", "")))
        return EmptyResult()

    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, accept)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, accept)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, accept)


def _ask(message: str, field: str, kind: str = "string") -> dict[str, Any]:
    return {"method": "elicitation/create", "params": {"message": message, "requestedSchema": {
        "type": "object", "properties": {field: {"type": kind}}, "required": [field]}}}


def _sample(text: str, max_tokens: int) -> dict[str, Any]:
    return {"method": "sampling/createMessage", "params": {
        "messages": [{"role": "user", "content": {"type": "text", "text": text}}], "maxTokens": max_tokens}}


ROOTS: dict[str, Any] = {"method": "roots/list", "params": {}}


def add_input_required_fixtures(server: ContextServer) -> None:
    """SEP-2322 (multi-round-trip requests): tools and a prompt that answer `InputRequiredResult` until the
    client sends the responses (and the echoed, HMAC-signed `requestState`)."""
    key = secrets.token_bytes(32)

    def sign(state: str) -> str:
        return state + "." + hmac.new(key, state.encode(), hashlib.sha256).hexdigest()

    def verified(ctx: Context) -> str | None:
        """The state the client echoed, or an error if it was tampered with; None when none was sent."""
        echoed = ctx.request_state
        if echoed is None:
            return None
        state, _, mac = echoed.rpartition(".")
        if not hmac.compare_digest(mac, hmac.new(key, state.encode(), hashlib.sha256).hexdigest()):
            raise MCPError(code=INVALID_PARAMS, message="requestState failed its integrity check")
        return state

    def need(requests: dict[str, Any], state: str | None = None) -> InputRequiredResult:
        return InputRequiredResult.model_validate(
            {"inputRequests": requests, **({"requestState": sign(state)} if state else {})})

    def answered(ctx: Context, *keys: str) -> bool:
        return all(k in (ctx.input_responses or {}) for k in keys)

    def done(text: str) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=text)])

    async def test_input_required_result_elicitation(ctx: Context) -> CallToolResult | InputRequiredResult:
        if not answered(ctx, "user_name"):
            return need({"user_name": _ask("What is your name?", "name")})
        return done(f"Hello, {json.dumps((ctx.input_responses or {})['user_name'], default=str)}")

    async def test_input_required_result_sampling(ctx: Context) -> CallToolResult | InputRequiredResult:
        if not answered(ctx, "capital_question"):
            return need({"capital_question": _sample("What is the capital of France?", 100)})
        return done("The model answered the capital question.")

    async def test_input_required_result_list_roots(ctx: Context) -> CallToolResult | InputRequiredResult:
        if not answered(ctx, "client_roots"):
            return need({"client_roots": ROOTS})
        return done(f"Roots: {json.dumps((ctx.input_responses or {})['client_roots'], default=str)}")

    async def test_input_required_result_request_state(ctx: Context) -> CallToolResult | InputRequiredResult:
        state = verified(ctx)
        if state != "confirm" or not answered(ctx, "confirm"):
            return need({"confirm": _ask("Please confirm", "ok", "boolean")}, "confirm")
        return done("state-ok: confirmed")

    async def test_input_required_result_multiple_inputs(ctx: Context) -> CallToolResult | InputRequiredResult:
        state = verified(ctx)
        if state != "all" or not answered(ctx, "user_name", "greeting", "client_roots"):
            return need({"user_name": _ask("What is your name?", "name"),
                         "greeting": _sample("Generate a greeting", 50), "client_roots": ROOTS}, "all")
        return done("Got the name, the greeting and the roots.")

    async def test_input_required_result_multi_round(ctx: Context) -> CallToolResult | InputRequiredResult:
        state = verified(ctx)
        if state == "round-2" and answered(ctx, "step2"):
            return done("Both steps answered.")
        if state == "round-1" and answered(ctx, "step1"):
            return need({"step2": _ask("Step 2: What is your favorite color?", "color")}, "round-2")
        return need({"step1": _ask("Step 1: What is your name?", "name")}, "round-1")

    async def test_input_required_result_tampered_state(ctx: Context) -> CallToolResult | InputRequiredResult:
        if verified(ctx) == "signed" and answered(ctx, "confirm"):
            return done("state verified")
        return need({"confirm": _ask("Please confirm", "ok", "boolean")}, "signed")

    async def test_input_required_result_capabilities(ctx: Context) -> CallToolResult | InputRequiredResult:
        declared = ctx.client_capabilities
        wanted: dict[str, Any] = {}
        if declared is not None and declared.elicitation is not None:
            wanted["user_name"] = _ask("What is your name?", "name")
        if declared is not None and declared.sampling is not None:
            wanted["greeting"] = _sample("Generate a greeting", 50)
        if declared is not None and declared.roots is not None:
            wanted["client_roots"] = ROOTS
        if not wanted or answered(ctx, *wanted):
            return done("Nothing to ask that this client can answer." if not wanted else "All answered.")
        return need(wanted)

    for fn in (test_input_required_result_elicitation, test_input_required_result_sampling,
               test_input_required_result_list_roots, test_input_required_result_request_state,
               test_input_required_result_multiple_inputs, test_input_required_result_multi_round,
               test_input_required_result_tampered_state, test_input_required_result_capabilities):
        server.add_tool(fn, description=f"SEP-2322 fixture: {fn.__name__}", structured_output=False)

    async def test_missing_capability(ctx: Context) -> str:
        """SEP-2575: a tool that needs the client's sampling capability refuses a client without it."""
        declared = ctx.client_capabilities
        if declared is None or declared.sampling is None:
            raise MCPError(code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                           message="this tool needs the client capability 'sampling'",
                           data={"requiredCapabilities": {"sampling": {}}})
        return "the client can sample"

    def test_custom_header(region: Annotated[str, Field(description="Region, mirrored in the Mcp-Param-Region header",
                                                        json_schema_extra={"x-mcp-header": "Region"})]) -> str:
        """SEP-2243: a parameter mirrored as a custom header, which the SDK checks against the body."""
        return f"region {region}"

    async def test_trigger_prompt_change(ctx: Context) -> str:
        """SEP-2575 hook: the prompt list changed (as after save_template), told to listen streams."""
        await notify_prompts_changed(ctx)
        return "prompt list change announced"

    async def test_trigger_tool_change(ctx: Context) -> str:
        """SEP-2575 hook: the tool list changed, told to listen streams."""
        await ctx.notify_tools_changed()
        return "tool list change announced"

    server.add_tool(test_trigger_prompt_change, description="SEP-2575 hook", structured_output=False)
    server.add_tool(test_trigger_tool_change, description="SEP-2575 hook", structured_output=False)
    server.add_tool(test_missing_capability, description="SEP-2575 fixture: needs sampling", structured_output=False)
    server.add_tool(test_custom_header, description="SEP-2243 fixture: x-mcp-header", structured_output=False)

    @server.prompt(description="SEP-2322 fixture: a prompt that asks for context first")
    async def test_input_required_result_prompt(ctx: Context) -> list[Message] | InputRequiredResult:
        if not answered(ctx, "user_context"):
            return need({"user_context": _ask("What context should the prompt use?", "context")})
        context = json.dumps((ctx.input_responses or {})["user_context"], default=str)
        return [UserMessage(content=TextContent(type="text", text=f"Use this context: {context}"))]


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
