"""`context-server config claude-desktop|claude-code`: set-up with this installation's absolute paths, printed
or (`--install`) merged into the client's own config file (see `client_files.py`).

MCP clients start the server without a shell or this virtual environment on PATH, so the command must be
the absolute path of *this* installation's `context-server` (the script next to the running interpreter),
and the data directory is passed explicitly so the client and the CLI share one.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from context_server.settings import Settings

__all__ = ["config", "server_command"]

SERVER_NAME = "context-server"


def server_command() -> list[str]:
    """This installation's server command: the installed script next to the interpreter running us, else
    that interpreter with `-m context_server.cli` (a source checkout run without installing). Under `uvx`
    the environment is a throw-away one in uv's cache, which `uv cache clean` deletes: there the command is
    `uvx` itself, run again from the same source (see `_uvx_command`)."""
    uvx = _uvx_command()
    if uvx is not None:
        return uvx
    script = Path(sys.executable).parent / ("context-server.exe" if os.name == "nt" else "context-server")
    if script.is_file():
        return [str(script.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "context_server.cli"]


def _uvx_command() -> list[str] | None:
    """`[uvx, "--from", source, "context-server"]` when this runs in a uvx environment, else None.

    Such an environment lives inside a cache directory (one that holds a CACHEDIR.TAG); uv sets `UV` to its
    own path for the commands it runs. The source is what uvx installed: the wheel or sdist file it was
    given (its PEP 610 direct_url.json), else this release from the index."""
    uv = os.environ.get("UV")
    prefix = Path(sys.prefix).resolve()
    if not uv or not any((folder / "CACHEDIR.TAG").is_file() for folder in prefix.parents):
        return None
    name = "uvx.exe" if os.name == "nt" else "uvx"
    beside = Path(uv).with_name(name)
    uvx = str(beside.absolute()) if beside.is_file() else shutil.which(name) or name
    return [uvx, "--from", _installed_from(), SERVER_NAME]


def _installed_from() -> str:
    from importlib.metadata import PackageNotFoundError, distribution
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    try:
        dist = distribution(SERVER_NAME)
    except PackageNotFoundError:
        return SERVER_NAME
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    url = urlparse(direct.get("url", ""))
    if url.scheme == "file" and "archive_info" in direct:
        return url2pathname(url.path)
    return f"{SERVER_NAME}=={dist.version}"


def server_env(settings: Settings) -> dict[str, str]:
    env = {"CONTEXT_SERVER_HOME": str(settings.home)}
    if settings.user != "local":
        env["CONTEXT_SERVER_USER"] = settings.user
    return env


@click.group()
def config() -> None:
    """Print the set-up for Claude Desktop or Claude Code."""


def _install_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                           help="The config file to change instead of the default one.")(command)
    command = click.option("--dry-run", is_flag=True,
                           help="With --install: show the change as a diff and write nothing.")(command)
    return click.option("--install", is_flag=True,
                        help="Merge the entry into the client's config file (other servers are kept, "
                             "the old file is backed up).")(command)


def _install(path: Path, entry: dict[str, Any], dry_run: bool, restart: str) -> None:
    from context_server.cli.client_files import ConfigFileError, plan_merge, write_merge

    try:
        merge = plan_merge(path, SERVER_NAME, entry)
        if dry_run:
            click.echo(merge.diff() if merge.changed else f"{path} already has this entry; nothing to change")
            return
        if not merge.changed:
            click.echo(f"{path} already has this entry; nothing changed")
            return
        backup = write_merge(merge)
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from None
    verb = "updated" if merge.old_text is not None else "created"
    click.echo(f"{verb} {path}: mcpServers.{SERVER_NAME} -> {entry['command']}")
    if backup is not None:
        click.echo(f"backup of the previous file: {backup}")
    if merge.others:
        click.echo(f"other servers kept: {', '.join(merge.others)}")
    click.echo(restart)


@config.command("claude-desktop")
@_install_options
def claude_desktop(install: bool, dry_run: bool, file: Path | None) -> None:
    """Print the entry for claude_desktop_config.json, or merge it in with --install.

    The file is found per platform (macOS ~/Library/Application Support/Claude/, Windows %APPDATA%\\Claude\\,
    Linux ~/.config/Claude/); --file names another.
    """
    from context_server.cli import load_settings
    from context_server.cli.client_files import claude_desktop_config_path

    if dry_run and not install:
        raise click.UsageError("--dry-run goes with --install")
    command, *args = server_command()
    entry = {"command": command, "args": args, "env": server_env(load_settings())}
    path = file or claude_desktop_config_path()
    if install:
        _install(path, entry, dry_run, "restart Claude Desktop to start the server")
        return
    click.echo(json.dumps({"mcpServers": {SERVER_NAME: entry}}, indent=2))
    click.echo(f"Add this to {path} (or run `context-server config claude-desktop --install`), "
               "then restart Claude Desktop.", err=True)


@config.command("claude-code")
@_install_options
def claude_code(install: bool, dry_run: bool, file: Path | None) -> None:
    """Print the `claude mcp add` command for Claude Code, or write the project's .mcp.json with --install.

    --install merges the entry into ./.mcp.json (the project scope, shared with your team through the
    repository); --file names another file.
    """
    from context_server.cli import load_settings

    if dry_run and not install:
        raise click.UsageError("--dry-run goes with --install")
    settings = load_settings()
    if install:
        command, *args = server_command()
        entry = {"type": "stdio", "command": command, "args": args, "env": server_env(settings)}
        _install(file or Path.cwd() / ".mcp.json", entry, dry_run,
                 "Claude Code asks to approve the project's servers the next time it starts here")
        return
    env = [f"--env {shlex.quote(f'{k}={v}')}" for k, v in server_env(settings).items()]
    command_line = " ".join(shlex.quote(part) for part in server_command())
    click.echo(f"claude mcp add --transport stdio {' '.join(env)} {SERVER_NAME} -- {command_line}")
