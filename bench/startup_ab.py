"""Interleaved A/B of the stdio cold start: A = as shipped (`cli.run` under `startup.command_start`: models
built on first use, the collector held back until `startup.started` freezes what start-up made), B = the
same server with both switched off.

Per start: wall time from spawn to the first tools/list answered, and the child's CPU time (user+sys) from
spawn to exit (stdin is closed right after the answer). CPU time is the figure to compare on a shared
machine, where wall time is mostly waiting for a core.

    python bench/startup_ab.py [REPO_DIR] [PAIRS]     (POSIX: uses os.wait4)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PATCH = ("import contextlib, context_server.startup as s; s.command_start = contextlib.nullcontext; "
         "s.started = lambda: None; ")
LAUNCH = "import sys; sys.argv = ['context-server']; from context_server.cli import run; run()"
MESSAGES = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize",
     "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "ab", "version": "0"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]


def start(variant: str, cwd: str) -> tuple[float, float]:
    """(wall ms to the tools/list answer, child CPU ms to exit) for one cold start."""
    env = {**os.environ, "CONTEXT_SERVER_HOME": tempfile.mkdtemp(), "CONTEXT_SERVER_LOG_LEVEL": "WARNING",
           "PYTHONPATH": cwd}
    code = (PATCH if variant == "B" else "") + LAUNCH
    began = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdin is not None and child.stdout is not None
    for message in MESSAGES:
        child.stdin.write((json.dumps(message) + "\n").encode())
        child.stdin.flush()
    wall = float("nan")
    for line in child.stdout:
        if json.loads(line).get("id") == 2:
            wall = (time.perf_counter() - began) * 1000
            break
    child.stdin.close()
    _, _, usage = os.wait4(child.pid, 0)
    child.returncode = 0
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    cwd = sys.argv[1] if len(sys.argv) > 1 else os.getcwd()
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    results: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    for i in range(pairs):
        for variant in ("AB" if i % 2 == 0 else "BA"):
            results[variant].append(start(variant, cwd))
    for variant, rows in results.items():
        wall, cpu = [r[0] for r in rows], [r[1] for r in rows]
        print(f"{variant}: n={len(rows)} wall p50 {statistics.median(wall):.0f} p95 {percentile(wall, .95):.0f} ms; "
              f"child CPU p50 {statistics.median(cpu):.0f} p95 {percentile(cpu, .95):.0f} ms")


if __name__ == "__main__":
    main()
