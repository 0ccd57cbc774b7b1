"""The `context-server` command. No arguments: serve MCP over stdio (what Claude Desktop runs).

Verb groups live in sibling modules (`templates.py`, ...), registered in `_register_verbs`.

stdout belongs to the stdio transport, so every message here goes to stderr unless a verb's whole
purpose is to print (a token, an export, a config snippet).
"""

from __future__ import annotations

import logging
import sys

import click

from .. import __version__
from ..settings import Settings

__all__ = ["configure_logging", "load_settings", "main"]


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="context-server")
@click.pass_context
def main(ctx: click.Context) -> None:
    """An MCP server for image generation with memory.

    Without a command, serves MCP over stdio (for Claude Desktop / Claude Code).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve, transport="stdio")


@main.command()
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True,
              help="stdio for one local user; http serves Streamable HTTP at /mcp for many users.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (http only).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port (http only).")
@click.option("--no-auth", is_flag=True, help="Serve HTTP without bearer tokens (refused unless bound to loopback).")
def serve(transport: str, host: str = "127.0.0.1", port: int = 8000, no_auth: bool = False) -> None:
    """Serve MCP over stdio or Streamable HTTP."""
    settings = load_settings()
    configure_logging(settings.log_level)
    from ..app import App
    from ..server import build_server

    app = App.create(settings)
    server = build_server(app)
    if transport == "stdio":
        import anyio

        async def run() -> None:
            try:
                await server.run_stdio_async()
            finally:
                await app.aclose()

        anyio.run(run)
    else:
        raise click.UsageError("the http transport is not available in this build yet")


def _register_verbs() -> None:
    """Each verb group lives in its own module; registration is explicit, in one place."""
    from . import templates

    main.add_command(templates.templates)


_register_verbs()
