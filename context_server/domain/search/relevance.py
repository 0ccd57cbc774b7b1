"""The relevance floor: a search result scoring under it is unrelated to the query and is left out.

Scores are cosine similarities of all-MiniLM-L6-v2 embeddings, clipped to [0, 1] (`adapters/index.py`).
Measured with `python bench/relevance.py` (40 image prompts, 24 memories, 41 + 23 related queries such
as "dragon" or "coffee logo", 20 unrelated ones such as "dinosaur" or "tax return forms"):

    search_images    related: min 0.33  p5 0.38  median 0.62   unrelated best: median 0.29  p95 0.47
    search_memories  related: min 0.43  p5 0.44  median 0.68   unrelated best: median 0.18  max 0.30

At 0.35 the floor keeps 40/41 related image queries and 23/23 memory queries, and lets 4/20 unrelated
image queries and 0/20 memory queries through (at 0.30: 8/20 and 1/20; at 0.40 it starts losing related
image queries). It is the same threshold reference resolution uses (`memory/references.MIN_SCORE`).
Figures and method: docs/benchmarks.md, "Search relevance floor".
"""

from __future__ import annotations

__all__ = ["RELEVANCE_FLOOR"]

RELEVANCE_FLOOR = 0.35
