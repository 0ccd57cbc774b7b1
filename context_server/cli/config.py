"""`context-server config claude-desktop|claude-code`: set-up snippets with this installation's absolute paths.

MCP clients start the server without a shell or this virtual environment on PATH, so the command must be
the absolute path of *this* installation's `context-server` (the script next to the running interpreter),
and the data directory is passed explicitly so the client and the CLI share one.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import click

from context_server.settings import Settings

__all__ = ["config", "server_command"]

SERVER_NAME = "context-server"


def server_command() -> list[str]:
    """This installation's server command: the installed script next to the interpreter running us, else
    that interpreter with `-m context_server.cli` (a source checkout run without installing)."""
    script = Path(sys.executable).parent / ("context-server.exe" if os.name == "nt" else "context-server")
    if script.is_file():
        return [str(script.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "context_server.cli"]


def server_env(settings: Settings) -> dict[str, str]:
    env = {"CONTEXT_SERVER_HOME": str(settings.home)}
    if settings.user != "local":
        env["CONTEXT_SERVER_USER"] = settings.user
    return env


@click.group()
def config() -> None:
    """Print the set-up for Claude Desktop or Claude Code."""


@config.command("claude-desktop")
def claude_desktop() -> None:
    """Print the entry for claude_desktop_config.json (merge it into the file's "mcpServers")."""
    from context_server.cli import load_settings

    command, *args = server_command()
    entry = {"mcpServers": {SERVER_NAME: {"command": command, "args": args, "env": server_env(load_settings())}}}
    click.echo(json.dumps(entry, indent=2))
    click.echo("Add this to claude_desktop_config.json (macOS: ~/Library/Application Support/Claude/, "
               "Windows: %APPDATA%\\Claude\\), then restart Claude Desktop.", err=True)


@config.command("claude-code")
def claude_code() -> None:
    """Print the `claude mcp add` command that registers this server with Claude Code."""
    from context_server.cli import load_settings

    env = [f"--env {shlex.quote(f'{k}={v}')}" for k, v in server_env(load_settings()).items()]
    command = " ".join(shlex.quote(part) for part in server_command())
    click.echo(f"claude mcp add --transport stdio {' '.join(env)} {SERVER_NAME} -- {command}")
