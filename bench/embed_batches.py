"""CPU per text when short queries go through the model alone or together (the case `SharedBatches` serves).

    python bench/embed_batches.py [--threads 1] [--texts 160]

Loads the production embedder (ONNX Runtime over the cached export; the first run makes it) and embeds
`--texts` random 2-5 word queries in batches of 1, 2, 4, 8 and 16, printing process CPU per text and wall
time per batch.
"""

from __future__ import annotations

import argparse
import random
import time

from context_server.adapters.embedder import Embedder
from context_server.settings import Settings

WORDS = ["watercolour", "fox", "forest", "neon", "city", "night", "ocean", "portrait", "muted", "palette", "warm",
         "light", "castle", "winter", "spaceship", "sunset", "mountain", "cat", "dog", "robot", "garden"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--texts", type=int, default=160)
    args = parser.parse_args()
    embedder = Embedder(args.threads, cache_dir=Settings.from_env().models_path)
    embedder.wait()
    rng = random.Random(1)
    print(f"backend {embedder.backend}, {args.threads} thread(s)")
    for size in (1, 2, 4, 8, 16):
        runs = max(1, args.texts // size)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(runs):
            embedder._encode([" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5))) for _ in range(size)])
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"batch of {size:2}: CPU {cpu / runs / size * 1000:5.2f} ms a text, wall {wall / runs * 1000:6.2f} ms a batch")


if __name__ == "__main__":
    main()
