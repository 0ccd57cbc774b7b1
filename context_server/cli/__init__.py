"""The `context-server` command. No arguments: serve MCP over stdio (what Claude Desktop runs).

Verb groups live in sibling modules (`templates.py`, ...), listed in `VERBS` and imported only when
invoked: serving stdio must not pay for the verbs' imports (rich, numpy, the memory import/export code)
before it answers its client.

stdout belongs to the stdio transport, so every message here goes to stderr unless a verb's whole
purpose is to print (a token, an export, a config snippet).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING, cast

import click

from context_server import __version__
from context_server.settings import Settings

if TYPE_CHECKING:
    from context_server.app import App

__all__ = ["configure_logging", "load_settings", "main", "run"]


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


# verb -> (module in this package, attribute): one place that says which verbs exist.
VERBS: dict[str, tuple[str, str]] = {
    "templates": ("templates", "templates"),
    "users": ("users", "users"),
    "memories": ("memories", "memories"),
    "images": ("images", "images"),
    "reindex": ("admin", "reindex"),
    "doctor": ("admin", "doctor"),
    "demo": ("admin", "demo"),
    "config": ("config", "config"),
    "gallery": ("gallery", "gallery"),
}


class _LazyVerbs(click.Group):
    """A group whose verbs (other than `serve`) are imported when they are looked up (click's lazy-group recipe)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *VERBS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in VERBS:
            module, attribute = VERBS[cmd_name]
            command = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyVerbs, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
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
    elif ctx.invoked_subcommand != "serve":
        # A verb's own output says what happens; its logs show warnings, or what CONTEXT_SERVER_LOG_LEVEL asks.
        configure_logging(os.environ.get("CONTEXT_SERVER_LOG_LEVEL", "WARNING"))


def run(args: list[str] | None = None) -> None:
    """The installed `context-server` command (and `python -m context_server.cli`, and the bundle's entry):
    `main` in a process of its own, started the cheap way (`startup.command_start`). Tests call `main` in
    their own process instead."""
    from context_server.startup import command_start

    with command_start():
        main(args, prog_name="context-server")


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
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot use the data directory {settings.home}: {exc}") from None
    import anyio

    if transport == "stdio":
        anyio.run(_serve_stdio, settings)
    else:
        anyio.run(_serve_http, settings, host, port, not no_auth)


async def _serve_stdio(settings: Settings) -> None:
    """Answer the client first, open the App after (`DeferredApp`): the first tools/list waits for no store.
    Building the server under `run`'s `command_start` builds the SDK's ~550 protocol models on first use (a
    dozen answer the first requests); once it is built, `started` freezes what start-up made."""
    from context_server.server import build_server
    from context_server.server.deferred import DeferredApp
    from context_server.server.stdio import serve_stdio
    from context_server.startup import started

    app = DeferredApp(settings)
    server = build_server(cast("App", app))
    started()

    try:
        await serve_stdio(server, settings.max_frame_bytes)
    finally:
        await app.aclose()


async def _serve_http(settings: Settings, host: str, port: int, auth: bool) -> None:
    from context_server.app import App
    from context_server.server.http import serve_http
    from context_server.startup import started

    app = App.create(settings)
    started()
    try:
        await serve_http(app, host=host, port=port, auth=auth)
    finally:
        await app.aclose()


def _check_http(settings: Settings, host: str, no_auth: bool) -> None:
    """Refuse an unsafe bind before opening or importing anything, with a message saying what to set."""
    from context_server.errors import InvalidInput
    from context_server.server.bind import allow_lists

    try:
        allow_lists(host, settings.allowed_hosts, settings.allowed_origins, auth=not no_auth)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from None
    if no_auth:
        click.echo(f"warning: --no-auth: every HTTP request acts as user {settings.user!r} without a token; "
                   "anything on this machine that can reach the port can use it", err=True)
