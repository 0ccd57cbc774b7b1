"""A client that goes away mid-request is one INFO line on stderr, never an ERROR or a traceback (issue 15).

Real servers in subprocesses (stderr as a user sees it), a real provider fake over HTTP that takes its
time, so the client leaves while the server is inside `generate_image`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes import OpenAIFake, serve_in_thread

from .conftest import WORKTREE
from .http_support import INITIALIZE, MCP_HEADERS

pytestmark = pytest.mark.anyio

GENERATE = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "generate_image", "arguments": {"prompt": "a red fox", "provider": "openai"}}}


@pytest.fixture
def slow_openai() -> Iterator[tuple[OpenAIFake, dict[str, str]]]:
    fake = OpenAIFake()
    fake.delay = 1.5  # the client leaves within ms of the provider being called; the HTTP server's stop waits this out
    base, stop = serve_in_thread(fake.app)
    try:
        yield fake, OpenAIFake.env(base)
    finally:
        stop()


def server_env(home: Path, provider_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(WORKTREE), "CONTEXT_SERVER_HOME": str(home),
            "CONTEXT_SERVER_LOG_LEVEL": "INFO", **provider_env}


async def until_the_provider_is_called(fake: OpenAIFake) -> None:
    for _ in range(600):
        if fake.calls("/images/generations"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the server never called the provider")


def assert_one_quiet_line(log: str, expected: str) -> None:
    """No ERROR, no traceback, and exactly one INFO line from the dropped-client logger ending in `expected`."""
    assert "Traceback" not in log and " ERROR " not in log and "Exception" not in log, log
    gone = [line for line in log.splitlines() if "went away" in line]
    assert len(gone) == 1, log
    assert re.search(" INFO context_server.server.dropped: stdio: " + expected + "$", gone[0]), gone[0]


@pytest.mark.parametrize("how", ["killed", "stdin closed"])
async def test_a_stdio_client_gone_mid_call_is_one_info_line(
    home: Path, slow_openai: tuple[OpenAIFake, dict[str, str]], how: str,
) -> None:
    fake, provider_env = slow_openai
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "context_server.cli", cwd=str(WORKTREE), env=server_env(home, provider_env),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        for message in (INITIALIZE, {"jsonrpc": "2.0", "method": "notifications/initialized"}, GENERATE):
            proc.stdin.write(json.dumps(message).encode() + b"\n")
        await proc.stdin.drain()
        assert b'"id":1,"result"' in await asyncio.wait_for(proc.stdout.readline(), 60)
        await until_the_provider_is_called(fake)
        proc.stdin.close()
        if how == "killed":  # what the OS does to a killed client's pipes: both ends close
            proc._transport.get_pipe_transport(1).close()  # type: ignore[attr-defined]
            replies: list[bytes] = []
        else:  # the client still reads: the SDK answers the cut-off request
            replies = [line async for line in proc.stdout]
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        log = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    # Killed, both ends close: the line names whichever the server saw first (stdin's end, or a failed write).
    ends = "stdin" if how == "stdin closed" else "(stdin|stdout)"
    assert_one_quiet_line(log, rf"client went away during tools/call generate_image \(request 7\) \({ends} closed\)")
    if replies:
        assert json.loads(replies[-1])["id"] == 7


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_http_client_gone_mid_call_or_mid_body_is_one_info_line_each_and_the_next_is_served(
    home: Path, slow_openai: tuple[OpenAIFake, dict[str, str]],
) -> None:
    fake, provider_env = slow_openai
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "context_server.cli", "serve", "--transport", "http", "--port", str(port), "--no-auth"],
        cwd=WORKTREE, env=server_env(home, provider_env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(300):
                try:
                    opened = await http.post(url, json=INITIALIZE, headers=MCP_HEADERS)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            session = opened.headers["mcp-session-id"]
            headers = {**MCP_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
            await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)

        # 1. The client leaves while the server waits on the provider.
        async with httpx.AsyncClient(timeout=30) as http:
            call = asyncio.create_task(http.post(url, json=GENERATE, headers=headers))
            await until_the_provider_is_called(fake)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call

        # 2. The client leaves halfway through sending its body (the SDK logged this at ERROR with a traceback).
        body = json.dumps({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                           "params": {"name": "search_memories", "arguments": {"query": "fox " * 50}}}).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Host": f"127.0.0.1:{port}",
                                                   "Content-Length": str(len(body))}.items())
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST /mcp HTTP/1.1\r\n{head}\r\n".encode() + body[: len(body) // 2])
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()
        await writer.wait_closed()

        # 3. The next client is served, and a normal call and close log no departure.
        async with httpx.AsyncClient(timeout=60) as http:
            listed = await http.post(url, json={"jsonrpc": "2.0", "id": 9, "method": "tools/list"}, headers=headers)
            assert listed.status_code == 200 and "generate_image" in listed.text
            searched = await http.post(url, headers=headers, json={
                "jsonrpc": "2.0", "id": 10, "method": "tools/call",
                "params": {"name": "search_memories", "arguments": {"query": "fox"}}})
            assert searched.status_code == 200 and '"id":10' in searched.text
        await asyncio.sleep(0.5)
    finally:
        proc.terminate()
        _, log = proc.communicate(timeout=60)
    assert "Traceback" not in log and " ERROR " not in log, log
    gone = [line.split(": ", 1)[1] for line in log.splitlines() if "went away" in line]
    short = session[:8]
    assert gone == [
        f"http: client went away during tools/call generate_image (request 7) in session {short}",
        f"http: client went away during tools/call search_memories (request 8) in session {short}, "
        "before its body arrived",
    ], log
    assert all(" INFO context_server.server.dropped: " in line for line in log.splitlines() if "went away" in line)
