"""How long `context-server memories import` takes for a large file, run as the installed command.

Writes N memories (default 20,000) of 8-20 words each, varied enough that few are near-duplicates, to a
JSONL file; imports it into a fresh data directory with the CLI (model load included), then imports it
again (which must add nothing), and exports to check the count.

    python bench/import_memories.py [--count 20000] [--keep DIR]

Prints the wall time of each step and the import reports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SUBJECTS = ["lighthouse", "fox", "spaceship", "harbour", "mountain lake", "city street", "forest cabin", "robot",
            "dragon", "tea house", "desert caravan", "coral reef", "train station", "library", "castle",
            "market stall", "violin", "bicycle", "owl", "glacier", "vineyard", "submarine", "windmill", "cat"]
STYLES = ["watercolour", "oil painting", "pencil sketch", "pixel art", "linocut", "ukiyo-e print", "3D render",
          "film photograph", "charcoal drawing", "gouache", "isometric illustration", "art nouveau poster"]
MOODS = ["at dusk", "in heavy rain", "under a full moon", "in morning fog", "at noon", "in autumn",
         "covered in snow", "during a festival", "after a storm", "in golden hour light"]
EXTRAS = ["wide shot", "close-up", "muted palette", "vivid colours", "high contrast", "soft focus",
          "symmetrical framing", "long shadows", "shallow depth of field", "grainy texture"]
KINDS = ["style", "preference", "fact", "note"]


def make_lines(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        words = (f"{rng.choice(STYLES)} of a {rng.choice(SUBJECTS)} {rng.choice(MOODS)}, "
                 f"{', '.join(rng.sample(EXTRAS, 2))}, reference {i}")
        lines.append(json.dumps({"content": words, "kind": rng.choice(KINDS), "tags": [f"t{i % 50}"]}))
    return lines


def run(home: Path, *args: str) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(wall seconds, CPU seconds of the child, result): CPU time is what a busy shared machine cannot
    inflate much, so both are reported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONTEXT_SERVER_HOME": str(home), "CONTEXT_SERVER_LOG_LEVEL": "WARNING"}
    cpu_before = _child_cpu()
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "context_server.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, check=False)
    return time.perf_counter() - began, _child_cpu() - cpu_before, done


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, default=None, help="Use this data directory (kept afterwards).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.keep or Path(tmp) / "home"
        source = Path(tmp) / "memories.jsonl"
        source.write_text("\n".join(make_lines(args.count)) + "\n", encoding="utf-8")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"load average before: {os.getloadavg()[0]:.1f}")
        for label in ("first import", "second import (same file)"):
            seconds, cpu, done = run(home, "memories", "import", str(source), "--json")
            if done.returncode != 0:
                sys.exit(f"{label} failed: {done.stderr[-2000:]}")
            report = json.loads(done.stdout)
            print(f"{label}: {seconds:.1f}s wall, {cpu:.1f}s CPU  added={report['added']} merged={report['merged']} "
                  f"skipped={len(report['skipped'])}; load average {os.getloadavg()[0]:.1f}")
        seconds, cpu, done = run(home, "memories", "export")
        print(f"export: {seconds:.1f}s wall, {cpu:.1f}s CPU, {len(done.stdout.splitlines())} lines")


if __name__ == "__main__":
    main()
