"""The installed `context-server`, started over stdio the way Claude Desktop starts it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from .conftest import call

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

EXE = str(Path(sys.executable).parent / "context-server")


def params(home: Path, **env: str) -> StdioServerParameters:
    return StdioServerParameters(command=EXE, args=[], env={**os.environ, "CONTEXT_SERVER_HOME": str(home), **env})


async def test_claude_desktop_style_session_over_stdio_and_its_images_survive_a_restart(home: Path) -> None:
    async with Client(params(home)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"generate_image", "get_generation", "list_recent_generations", "delete_image",
                "list_providers"} <= names
        data = await call(client, "generate_image", prompt="a red kite over green hills", width=256, height=256)
        view = await client.read_resource(f"image://{data['image_id']}/view?format=jpeg&width=128")
        assert view.contents[0].mime_type == "image/jpeg"
    assert Path(data["path"]).is_file() and (home / "context.db").is_file()

    async with Client(params(home)) as client:  # the next session: a new process on the same data directory
        listed = await call(client, "list_recent_generations")
        meta = await client.read_resource(f"image://{data['image_id']}/metadata")
    assert listed["generations"][0]["image_id"] == data["image_id"]
    assert "a red kite over green hills" in meta.contents[0].text  # type: ignore[union-attr]


async def test_the_handshake_era_protocol_is_served_too(home: Path) -> None:
    async with Client(params(home), mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        assert (await call(client, "list_providers"))["providers"]


def test_stdout_carries_only_protocol_messages_and_logs_go_to_stderr(home: Path) -> None:
    request = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",' \
              b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n'
    proc = subprocess.run([EXE], input=request, capture_output=True, timeout=60,
                          env={**os.environ, "CONTEXT_SERVER_HOME": str(home), "CONTEXT_SERVER_LOG_LEVEL": "DEBUG"})
    lines = [line for line in proc.stdout.decode().splitlines() if line.strip()]
    assert lines and all(line.startswith('{"jsonrpc":"2.0"') or line.startswith('{"id"') or '"jsonrpc"' in line
                         for line in lines), lines
    assert proc.stderr  # debug logs went somewhere, and it was not stdout
