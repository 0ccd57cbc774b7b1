"""Start the installed server over stdio and measure what a Claude Desktop user waits for.

    python bench/stdio_bench.py [--starts 200] [--calls 200] [--size 512]

Prints medians and p95 for: cold start (spawn → first tools/list answered), generate_image round trips
(placeholder, SIZE x SIZE), and the server's peak RSS (VmHWM). Each cold start uses a fresh data
directory; the round trips run in one session.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

EXE = str(Path(sys.executable).parent / "context-server")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def server_peak_rss_mb() -> float:
    """VmHWM of our child processes (the server), in MB."""
    me = os.getpid()
    peak = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != me:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, ValueError, IndexError):
            continue
    return peak


def params(home: str) -> StdioServerParameters:
    env = {**os.environ, "CONTEXT_SERVER_HOME": home, "CONTEXT_SERVER_LOG_LEVEL": "WARNING",
           "CONTEXT_SERVER_RATE_LIMIT_PER_MINUTE": "0"}
    return StdioServerParameters(command=EXE, args=[], env=env)


async def cold_start() -> float:
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        async with Client(params(home)) as client:
            await client.list_tools()
            return time.perf_counter() - started


async def round_trips(calls: int, size: int) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as home:
        async with Client(params(home)) as client:
            await client.list_tools()
            times = []
            for i in range(calls):
                started = time.perf_counter()
                result = await client.call_tool(
                    "generate_image", {"prompt": f"a red fox in a forest, study {i}", "width": size, "height": size})
                times.append(time.perf_counter() - started)
                assert not result.is_error, result.content
            return times, server_peak_rss_mb()


def report(name: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(f"{name:<42} n={len(ms):<4} median {statistics.median(ms):8.1f} ms   p95 {percentile(ms, 0.95):8.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=200)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    starts = [await cold_start() for _ in range(args.starts)]
    times, rss = await round_trips(args.calls, args.size)
    print(f"context-server stdio benchmark ({os.cpu_count()} cores, python {sys.version.split()[0]})")
    report("cold start → first tools/list", starts)
    report(f"generate_image {args.size}x{args.size} round trip", times)
    print(f"{'server peak RSS (VmHWM) after round trips':<42} {rss:8.1f} MB")


if __name__ == "__main__":
    asyncio.run(main())
