"""What one tool call costs the server, with nothing else in flight: CPU and wall time per call, per tool.

    python bench/call_cost.py [--calls 200] [--tools search_memories,save_memory,generate_image,get_profile]

Starts `serve --transport http` on a fresh data directory, one user and one MCP session; after a warm-up
(20 saves, 3 generations, 20 searches) it makes `--calls` calls of each tool back to back (generate_image:
a tenth of that) and prints, per tool, the server's CPU time per call (user + system, from /proc, Linux),
the wall time per call seen by the client, and the client's own CPU per call. CPU per call is what bounds
`bench/load.py`: 20 sessions on 2 cores wait for each other's CPU. `get_profile` is the floor: the
transport, the SDK, auth and the audit, with almost no work of ours.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).parent))
from load import arguments, cpu_seconds, make_tokens, own_cpu, start_server


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--tools", default="search_memories,save_memory,generate_image,get_profile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        token = make_tokens(home, 1)[0]
        server, url = start_server(home)
        try:
            rng = random.Random(1)
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(120.0))
            async with Client(streamable_http_client(url, http_client=http)) as client:
                for tool, n in (("save_memory", 20), ("generate_image", 3), ("search_memories", 20)):
                    for _ in range(n):
                        await client.call_tool(tool, arguments(tool, rng))
                print("| tool | calls | server CPU ms/call | wall ms/call | client CPU ms/call |")
                print("|---|---|---|---|---|")
                for tool in args.tools.split(","):
                    n = max(1, args.calls // 10) if tool == "generate_image" else args.calls
                    server_cpu, began, client_cpu = cpu_seconds(server.pid), time.perf_counter(), own_cpu()
                    for _ in range(n):
                        known = tool in ("search_memories", "save_memory", "generate_image")
                        result = await client.call_tool(tool, arguments(tool, rng) if known else {})
                        if result.is_error:
                            raise SystemExit(f"{tool} failed: {result.content}")
                    wall = time.perf_counter() - began
                    print(f"| {tool} | {n} | {(cpu_seconds(server.pid) - server_cpu) / n * 1000:.1f} | "
                          f"{wall / n * 1000:.1f} | {(own_cpu() - client_cpu) / n * 1000:.1f} |", flush=True)
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    asyncio.run(main())
