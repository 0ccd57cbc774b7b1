"""Peak memory of the stdio server when several full-size images are made at once (the §8 memory ceiling).

    python bench/decode_memory.py [--images 4] [--side 4096] [--runs 3]

Each run spawns a fresh server over stdio (fresh data directory), makes IMAGES `generate_image` calls at
once with the placeholder provider at SIDE x SIDE (each draws, encodes, decodes and re-encodes a full-size
image), and reads the server's VmHWM (Linux /proc) before and after. First, the peak after one stdio line
of 32 MiB (refused past CONTEXT_SERVER_MAX_FRAME_BYTES, read in 64 KiB chunks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

WORKTREE = Path(__file__).resolve().parent.parent


def vm(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


class Peer:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send(self, message: dict[str, object] | bytes) -> None:
        assert self.proc.stdin is not None
        line = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.proc.stdin.write(line + b"\n")
        await self.proc.stdin.drain()

    async def until(self, ids: set[object]) -> None:
        assert self.proc.stdout is not None
        left = set(ids)
        while left:
            message = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 600))
            if "method" not in message:
                left.discard(message.get("id"))


async def spawn(home: str) -> Peer:
    env = {**os.environ, "CONTEXT_SERVER_HOME": home, "CONTEXT_SERVER_LOG_LEVEL": "WARNING",
           "CONTEXT_SERVER_RATE_LIMIT_PER_MINUTE": "0", "CONTEXT_SERVER_WAIT_SECONDS": "600",
           "PYTHONPATH": str(WORKTREE)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "context_server.cli", env=env,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                limit=16 * 1024 * 1024)
    peer = Peer(proc)
    await peer.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})
    await peer.until({0})
    await peer.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    # Open the App and warm it up (one small image), so the baseline includes what every server holds.
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "generate_image", "arguments": {"prompt": "warm up", "width": 64, "height": 64}}})
    await peer.until({1})
    await peer.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {  # waits for the embedder
        "name": "search_memories", "arguments": {"query": "warm up"}}})
    await peer.until({2})
    await asyncio.sleep(2)
    return peer


async def one_run(images: int, side: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as home:
        peer = await spawn(home)
        base = vm(peer.proc.pid, "VmHWM")
        await peer.send(b'{"jsonrpc": "2.0", "id": 900, "method": "ping", "params": {"x": "'
                        + b"a" * (32 * 1024 * 1024) + b'"}}')
        await peer.send({"jsonrpc": "2.0", "id": 901, "method": "ping"})
        await peer.until({900, 901})
        line_peak = vm(peer.proc.pid, "VmHWM")
        ids = set(range(100, 100 + images))
        for i in ids:
            await peer.send({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
                "name": "generate_image",
                "arguments": {"prompt": f"a big picture {i}", "width": side, "height": side}}})
        await peer.until(ids)
        images_peak = vm(peer.proc.pid, "VmHWM")
        assert peer.proc.stdin is not None
        peer.proc.stdin.close()
        await peer.proc.wait()
        return base, images_peak, line_peak


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = []
    for run in range(1, args.runs + 1):
        base, peak, line = await one_run(args.images, args.side)
        results.append((base, peak, line))
        print(f"run {run}: peak RSS before {base:.0f} MB, after a 32 MiB stdio line {line:.0f} MB, "
              f"after {args.images} x {args.side}² at once {peak:.0f} MB")
    print(f"median: before {statistics.median(r[0] for r in results):.0f} MB, "
          f"{args.images} x {args.side}² {statistics.median(r[1] for r in results):.0f} MB, "
          f"32 MiB line {statistics.median(r[2] for r in results):.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
