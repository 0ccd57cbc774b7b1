"""How fast the embedder is at each torch thread count, each measured in a fresh process.

Thread pools are fixed when torch starts, so every setting gets its own subprocess (env vars set before
torch is imported, then `torch.set_num_threads`); "default" leaves both alone, as a library user would.

    python bench/embed_threads.py [--singles 200] [--batches 10] [--threads 1,2,4,default]

Prints a Markdown table: p50/p95 latency of one-sentence embeds and the throughput of batches of 64.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, os, sys, time
threads = sys.argv[1]
singles, batches = int(sys.argv[2]), int(sys.argv[3])
os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
if threads != "default":
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = threads
import torch
if threads != "default":
    torch.set_num_threads(int(threads))
from sentence_transformers import SentenceTransformer
from context_server.adapters.embedder import default_model_path
model = SentenceTransformer(str(default_model_path()), device="cpu")
sentences = [f"a {c} watercolour painting of a lighthouse number {i} at dusk" for i, c in
             zip(range(512), ["red", "blue", "green", "golden"] * 128)]
for s in sentences[:10]:
    model.encode([s], show_progress_bar=False)
single = []
for s in sentences[:singles]:
    t = time.perf_counter()
    model.encode([s], show_progress_bar=False)
    single.append(time.perf_counter() - t)
batch = []
for b in range(batches):
    chunk = sentences[(b * 64) % 448:(b * 64) % 448 + 64]
    t = time.perf_counter(); model.encode(chunk, batch_size=64, show_progress_bar=False)
    batch.append(time.perf_counter() - t)
json.dump({"threads": threads, "torch_threads": torch.get_num_threads(), "single": single, "batch": batch},
          sys.stdout)
"""


def measure(threads: str, singles: int, batches: int) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, threads, str(singles), str(batches)],
        capture_output=True, text=True, env=env, cwd=ROOT, check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--singles", type=int, default=200)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--threads", default="1,2,4,default")
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"{machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print()
    print("| torch threads | single p50 (ms) | single p95 (ms) | batch of 64 median (ms) | sentences/s |")
    print("|---|---|---|---|---|")
    for threads in args.threads.split(","):
        result = measure(threads.strip(), args.singles, args.batches)
        single = [s * 1000 for s in result["single"]]  # type: ignore[attr-defined]
        batch = statistics.median(result["batch"]) * 1000  # type: ignore[arg-type]
        label = threads if threads != "default" else f"default ({result['torch_threads']})"
        print(
            f"| {label} | {percentile(single, 50):.1f} | {percentile(single, 95):.1f} | {batch:.0f} | "
            f"{64 / batch * 1000:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
