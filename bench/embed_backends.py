"""ONNX Runtime (production) against sentence-transformers on torch (fallback), through `Embedder`.

    python bench/embed_backends.py [--singles 300] [--batches 10] [--threads 2]

Both embed the packaged all-MiniLM-L6-v2 weights; prints single-query p50/p95, batch-of-64 median and
load time, and the largest difference between the two backends' vectors.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from context_server.adapters.embedder import Embedder

QUERIES = [f"a {c} {s} at {t}, {m}" for c in ("misty", "red", "quiet", "neon") for s in ("forest", "harbour",
           "robot", "castle", "logo") for t in ("dawn", "dusk", "night") for m in ("watercolour", "photo")]


def measure(embedder: Embedder, singles: int, batches: int) -> tuple[float, float, float, float]:
    began = time.perf_counter()
    embedder.wait()
    load = time.perf_counter() - began
    times = []
    for i in range(singles):
        embedder.clear_cache()
        started = time.perf_counter()
        embedder.embed([f"{QUERIES[i % len(QUERIES)]} #{i}"])
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    batch = []
    for i in range(batches):
        texts = [f"{q} batch {i}" for q in (QUERIES * 2)[:64]]
        started = time.perf_counter()
        embedder.embed(texts)
        batch.append((time.perf_counter() - started) * 1000)
    return load, statistics.median(times), times[int(0.95 * (len(times) - 1))], statistics.median(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        onnx = Embedder(args.threads, cache_dir=Path(cache))
        onnx.start()
        onnx.wait()  # the first start exports the weights; time a second, cached load below
        cached = Embedder(args.threads, cache_dir=Path(cache))
        cached.start()
        torch = Embedder(args.threads)
        torch.start()
        rows = [("onnx (cached export)", measure(cached, args.singles, args.batches)),
                ("torch (sentence-transformers)", measure(torch, args.singles, args.batches))]
        sample = QUERIES[:16]
        diff = max(abs(a - b) for va, vb in zip(cached.embed(sample), torch.embed(sample), strict=True)
                   for a, b in zip(va, vb, strict=True))
    print(f"| backend ({args.threads} threads) | load s | single p50 ms | single p95 ms | batch of 64 ms |")
    print("|---|---|---|---|---|")
    for name, (load, p50, p95, batch) in rows:
        print(f"| {name} | {load:.1f} | {p50:.1f} | {p95:.1f} | {batch:.0f} |")
    print(f"largest difference between the two backends' vector components: {diff:.2e}")


if __name__ == "__main__":
    main()
