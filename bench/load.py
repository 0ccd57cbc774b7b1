"""N concurrent HTTP sessions making mixed tool calls against a real `serve --transport http` process.

    python bench/load.py [--sessions 20] [--calls 30] [--rounds 3] [--memories 10] [--think SECONDS]

Each session is its own user (bearer token) and MCP session. After a warm-up (each session saves
`--memories` memories, untimed), every round runs SESSIONS x CALLS calls at once: 70% search_memories,
25% save_memory, 5% generate_image (placeholder, 512x512). Prints p50/p95 per tool and errors for each
round (with the server's and this client's CPU time for it) and the median over rounds, plus the server's RSS, peak RSS
(VmHWM) and open file descriptors before and after (Linux /proc). The machine is shared: compare medians of several rounds, not one run.
`--think` makes each session pause between calls (exponentially distributed, that mean), as a person and a
model do; without it (the issue's closed loop) every session sends its next call the moment the last returns.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

WORDS = ["watercolour", "fox", "forest", "neon", "city", "night", "ocean", "portrait", "muted", "palette", "warm", "light", "castle", "winter", "spaceship", "sunset", "mountain", "cat", "dog", "robot", "garden", "rain", "desert", "minimal", "bold", "ink", "pastel"]
MIX = (("search_memories", 0.70), ("save_memory", 0.25), ("generate_image", 0.05))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def proc_stats(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {line.split(":")[0]: line.split()[1] for line in status if line.startswith(("VmRSS", "VmHWM"))}
    return {"rss_mb": int(fields["VmRSS"]) / 1024, "peak_mb": int(fields["VmHWM"]) / 1024,
            "fds": len(os.listdir(f"/proc/{pid}/fd")), "cpu_s": cpu_seconds(pid)}


def cpu_seconds(pid: int) -> float:
    """The server's user + system CPU time so far: what a round costs, whatever else the machine runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """This process's user + system CPU time so far: the sessions' client side shares the server's cores."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`serve --transport http` on `home` and a free port, once it accepts connections; the MCP URL."""
    port = free_port()
    env = {**os.environ, "CONTEXT_SERVER_HOME": str(home), "CONTEXT_SERVER_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "context_server.cli", "serve", "--transport", "http",
                               "--port", str(port)], env=env)
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.1)
    return server, f"http://127.0.0.1:{port}/mcp"


def make_tokens(home: Path, n: int) -> list[str]:
    from context_server.adapters.store import Store
    from context_server.domain.users import Users

    home.mkdir(parents=True, exist_ok=True)
    store = Store(home / "context.db")
    store.migrate()
    users = Users(store)
    return [users.add(f"load{i}")[1] for i in range(n)]


def arguments(tool: str, rng: random.Random) -> dict[str, Any]:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
    if tool == "search_memories":
        return {"query": words}
    if tool == "save_memory":
        return {"content": f"I like {words} ({rng.randrange(10**9)})"}
    return {"prompt": words, "width": 512, "height": 512, "provider": "placeholder"}


async def session(url: str, token: str, calls: int, seed: int, warmup: int, start: asyncio.Event,
                  ready: list[int], timings: dict[str, list[float]], errors: dict[str, list[str]],
                  think: float = 0.0) -> None:
    rng = random.Random(seed)
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(120.0))
    async with Client(streamable_http_client(url, http_client=http)) as client:
        for _ in range(warmup):
            await client.call_tool("save_memory", arguments("save_memory", rng))
        ready.append(1)
        await start.wait()
        tools = [name for name, _ in MIX]
        weights = [w for _, w in MIX]
        for _ in range(calls):
            if think:
                await asyncio.sleep(rng.expovariate(1 / think))
            tool = rng.choices(tools, weights)[0]
            began = time.perf_counter()
            try:
                result = await client.call_tool(tool, arguments(tool, rng))
                if result.is_error:
                    errors[tool].append(result.content[0].text[:200])  # type: ignore[union-attr]
            except Exception as exc:
                errors[tool].append(f"{type(exc).__name__}: {exc}"[:200])
            timings[tool].append((time.perf_counter() - began) * 1000)


async def one_round(url: str, tokens: list[str], calls: int, warmup: int, seed: int,
                    think: float = 0.0) -> tuple[dict[str, list[float]], dict[str, list[str]]]:
    timings: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, list[str]] = defaultdict(list)
    start = asyncio.Event()
    ready: list[int] = []
    tasks = [asyncio.create_task(session(url, token, calls, seed * 1000 + i, warmup, start, ready, timings, errors,
                                         think))
             for i, token in enumerate(tokens)]
    while len(ready) < len(tokens) and not any(t.done() for t in tasks):
        await asyncio.sleep(0.02)  # every session connected (and warmed up) before the clock starts
    start.set()
    await asyncio.gather(*tasks)
    return timings, errors


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--calls", type=int, default=30, help="calls per session per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memories", type=int, default=10, help="memories each session saves before round 1")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean pause in seconds between a session's calls (0: the closed loop)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        tokens = make_tokens(home, args.sessions)
        server, url = start_server(home)
        try:
            # Warm-up: the embedder loaded, every user has memories; untimed.
            await one_round(url, tokens, 0, args.memories, seed=0)
            before = proc_stats(server.pid)
            rounds: list[dict[str, tuple[float, float, int, int]]] = []
            for r in range(1, args.rounds + 1):
                began, cpu, mine = time.perf_counter(), cpu_seconds(server.pid), own_cpu()
                timings, errors = await one_round(url, tokens, args.calls, 0, seed=r, think=args.think)
                wall, cpu, mine = time.perf_counter() - began, cpu_seconds(server.pid) - cpu, own_cpu() - mine
                summary = {tool: (percentile(timings[tool], 0.5), percentile(timings[tool], 0.95),
                                  len(timings[tool]), len(errors[tool])) for tool, _ in MIX}
                rounds.append(summary)
                load = os.getloadavg()[0]
                print(f"round {r}: {sum(len(t) for t in timings.values())} calls in {wall:.1f} s "
                      f"({sum(len(t) for t in timings.values()) / wall:.1f}/s), "
                      f"server CPU {cpu:.1f} s, this client's CPU {mine:.1f} s, load average {load:.1f}")
                for tool, (p50, p95, n, err) in summary.items():
                    print(f"  {tool:16} n={n:4} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  errors {err}")
                for tool, messages in errors.items():
                    for message in messages[:3]:
                        print(f"  ! {tool}: {message}")
            after = proc_stats(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    print(f"\nmedian of {args.rounds} rounds, {args.sessions} sessions x {args.calls} calls:")
    print("| tool | p50 ms | p95 ms | errors |")
    print("|---|---|---|---|")
    for tool, _ in MIX:
        p50 = statistics.median(r[tool][0] for r in rounds)
        p95 = statistics.median(r[tool][1] for r in rounds)
        err = sum(r[tool][3] for r in rounds)
        print(f"| {tool} | {p50:.1f} | {p95:.1f} | {err} |")
    print(f"server RSS {before['rss_mb']:.0f} MB -> {after['rss_mb']:.0f} MB (peak {after['peak_mb']:.0f} MB), "
          f"open fds {before['fds']:.0f} -> {after['fds']:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
