"""The MCP server object: the SDK's `MCPServer`, with per-user prompts and typed image views."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, GetPromptResult, Icon, InputRequiredResult, Prompt, ToolAnnotations
from pydantic import ValidationError
from pydantic.networks import AnyUrl

from context_server import __version__
from context_server.server.audit import AuditMiddleware
from context_server.server.generation import register_tools
from context_server.server.memory import register_memory
from context_server.server.resources import read_image_view, register_resources
from context_server.server.templates import list_user_prompts, register_templates, render_user_prompt
from context_server.server.tool_list import ToolBuilder
from context_server.server.validation import explain
from context_server.server.viewer import viewer_extension

if TYPE_CHECKING:
    from context_server.app import App

__all__ = ["ContextServer", "build_server"]

INSTRUCTIONS = (
    "Image generation with memory. Call generate_image with a plain prompt; the server applies the user's "
    "remembered styles and profile defaults and reports everything it added in `applied`. Use save_memory "
    "when the user states a lasting preference, `reference` to build on an earlier image ('the previous one', "
    "'my last spaceship image'), and dry_run=true to preview the final prompt without generating."
)


class ContextServer(MCPServer[Any]):
    """`MCPServer` with per-user prompts (each user's template library) and typed image views."""

    def __init__(self, app: App, **kwargs: Any) -> None:
        self.app = app

        @asynccontextmanager
        async def lifespan(_: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
            await app.start()
            yield {}

        super().__init__(name="context-server", title="context-server", version=__version__,
                         instructions=INSTRUCTIONS, lifespan=lifespan,
                         log_level=app.settings.log_level if app.settings.log_level in
                         ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO",  # type: ignore[arg-type]
                         **kwargs)
        # Handshake-era clients learn from the capabilities that the prompt list follows template edits.
        lowlevel = self._lowlevel_server
        create = lowlevel.create_initialization_options

        def with_list_changed(notification_options: NotificationOptions | None = None,
                              *args: Any, **kw: Any) -> Any:
            return create(notification_options or NotificationOptions(prompts_changed=True), *args, **kw)

        lowlevel.create_initialization_options = with_list_changed  # type: ignore[method-assign]

    #: Tool descriptions built once per process and shared by every server built in it (`ToolBuilder`).
    tools_built = ToolBuilder()

    def add_tool(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
    ) -> None:
        """The SDK's `add_tool`, with the tool's schemas compacted (`tool_list`) and built once per process."""
        tool = self.tools_built.build(fn, name=name, title=title, description=description, annotations=annotations,
                                      icons=icons, meta=meta, structured_output=structured_output)
        tools = self._tool_manager._tools  # the SDK adds tools only from functions; this one is built
        if tool.name not in tools:  # as the SDK's: the first registration under a name stays
            tools[tool.name] = tool

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """The SDK's call, with errors the model reads as one plain sentence: argument errors explained
        from the input schema (`width must be 64..4096; got 10`) instead of pydantic's report, and a
        tool's own message without the SDK's `Error executing tool …:` prefix."""
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                tool = self._tool_manager.get_tool(name)
                raise ToolError(explain(cause, tool.parameters if tool else None)) from cause
            if isinstance(cause, ToolError) and not isinstance(cause, UnexpectedToolError):
                raise ToolError(str(cause)) from cause.__cause__ or cause
            raise

    async def list_prompts(self) -> list[Prompt]:
        """The user's templates, then any prompt registered with `add_prompt` (none in production)."""
        return [*list_user_prompts(self.app), *await super().list_prompts()]

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        if self._prompt_manager.get_prompt(name) is not None:
            return await super().get_prompt(name, arguments, context)
        return render_user_prompt(self.app, name, arguments)

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        view = read_image_view(self.app, str(uri))
        if view is not None:
            return view
        return await super().read_resource(uri, context)


def build_server(app: App, **kwargs: Any) -> ContextServer:
    server = ContextServer(app, extensions=[viewer_extension()], **kwargs)
    server.middleware.append(AuditMiddleware(app))
    register_tools(server, app)
    register_resources(server, app)
    register_templates(server, app)
    register_memory(server, app)
    server.middleware.append(_after_first_answer(app))
    return server


def _after_first_answer(app: App) -> Any:
    """Release the background warm-up once a real request (not the handshake) has been answered."""
    handshake = {"initialize", "server/discover", "ping"}

    async def middleware(ctx: Any, call_next: Any) -> Any:
        result = await call_next(ctx)
        if ctx.request_id is not None and ctx.method not in handshake:
            app.request_answered()
        return result

    return middleware
