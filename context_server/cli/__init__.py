"""The `context-server` command. No arguments: serve MCP over stdio (what Claude Desktop runs).

Verb groups live in sibling modules (`templates.py`, ...), registered in `_register_verbs`.

stdout belongs to the stdio transport, so every message here goes to stderr unless a verb's whole
purpose is to print (a token, an export, a config snippet).
"""

from __future__ import annotations

import logging
import os
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
    """Settings from the environment; `context-server --home DIR ...` overrides CONTEXT_SERVER_HOME."""
    ctx = click.get_current_context(silent=True)
    home = ctx.find_root().params.get("home") if ctx is not None else None
    try:
        if home:
            return Settings.from_env({**os.environ, "CONTEXT_SERVER_HOME": str(home)})
        return Settings.from_env()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="context-server")
@click.option("--home", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Data directory for this command (overrides CONTEXT_SERVER_HOME).")
@click.pass_context
def main(ctx: click.Context, home: str | None) -> None:
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
    if transport == "http":
        _check_http(settings, host, no_auth)
    import anyio

    from ..app import App

    app = App.create(settings)

    async def run() -> None:
        try:
            if transport == "stdio":
                from ..server import build_server

                await build_server(app).run_stdio_async()
            else:
                from ..server.http import serve_http

                await serve_http(app, host=host, port=port, auth=not no_auth)
        finally:
            await app.aclose()

    anyio.run(run)


def _check_http(settings: Settings, host: str, no_auth: bool) -> None:
    """Refuse an unsafe bind before opening anything, with a message saying what to set."""
    from ..errors import InvalidInput
    from ..server.http import check_bind

    try:
        check_bind(settings, host, auth=not no_auth)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    if no_auth:
        click.echo(f"warning: --no-auth: every HTTP request acts as user {settings.user!r} without a token; "
                   "anything on this machine that can reach the port can use it", err=True)


def _register_verbs() -> None:
    """Each verb group lives in its own module; registration is explicit, in one place."""
    from . import admin, config, images, memories, templates, users

    main.add_command(templates.templates)
    main.add_command(users.users)
    main.add_command(memories.memories)
    main.add_command(images.images)
    main.add_command(admin.reindex)
    main.add_command(admin.doctor)
    main.add_command(admin.demo)
    main.add_command(config.config)


_register_verbs()
