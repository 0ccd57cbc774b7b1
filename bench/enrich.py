"""Enrichment and reference-resolution latency at 1k, 10k and 100k stored items, and cold start with memory.

    python bench/enrich.py [--sizes 1000,10000,100000] [--calls 300] [--spawns 20] [--cache DIR]

For each size N it builds (once; reused from `--cache`) a data directory holding N items over 20 users:
N/2 memories (styles and notes, one pinned style per user) and N/2 images with varied prompts made from
word lists. Rows go in with SQL, as the domain stores them, then `Indexer.rebuild()` embeds them in
batches. It then times `Enricher.enrich` — the step every generate_image runs before any provider — over
`--calls` calls per size, each by a random user, in three shapes:

- styles + reference: a new prompt plus `reference="my last <subject> image"` (a subject that user has),
  on a model without image-to-image, so the reference is resolved by meaning and continued in the prompt;
- styles only (no reference), and reference only (`apply_memory=false`);
- styles + reference on the placeholder model, which also reads the 512x512 reference PNG for the provider.

Each shape is timed twice: "(Chroma)" with every vector query going to Chroma, as a user's first requests
after a start do, then "(copies)" once the index's maintenance has loaded the collections in use into
memory (adapters/vector_cache.py), which is how a running server answers from then on.

Finally it spawns the server (`python -m context_server.cli`, stdio) `--spawns` times on the largest data
directory and times spawn → first `tools/list` answered, and spawn → first `search_memories` answered
(which includes loading the embedding model and taking the index).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from context_server.adapters.embedder import Embedder  # noqa: E402
from context_server.adapters.store import Store  # noqa: E402
from context_server.app import App, build_indexer  # noqa: E402
from context_server.domain.generation.input import GenerationInput  # noqa: E402
from context_server.domain.memory.lexicon import lexicon  # noqa: E402
from context_server.domain.memory.references import fill_subjects, subjects_text  # noqa: E402
from context_server.domain.memory.service import scope_columns  # noqa: E402
from context_server.domain.memory.styles import fill_style_keys  # noqa: E402
from context_server.settings import Settings  # noqa: E402

USERS = [f"user{i:02d}" for i in range(20)]
LAYOUT = 3  # bump when the generated data changes, so cached directories are rebuilt

SUBJECTS = [
    "spaceship", "lighthouse", "fox", "castle", "bowl of ramen", "sports car", "dragon", "robot", "owl",
    "whale", "treehouse", "steam train", "sailboat", "cathedral", "tiger", "hot air balloon", "samurai",
    "mermaid", "bicycle", "greenhouse", "volcano", "jellyfish", "windmill", "astronaut", "bonsai tree",
    "knight", "submarine", "wolf", "library", "motorbike", "peacock", "pagoda", "cactus", "octopus",
    "violin", "teapot", "giraffe", "waterfall", "skyscraper", "hummingbird",
]
ADJECTIVES = [
    "a weathered", "a tiny", "a giant", "an ancient", "a futuristic", "a cosy", "a lonely", "a glowing",
    "a rusty", "a majestic", "a playful", "a sleepy", "a crystal", "a wooden", "a neon-lit", "a misty",
]
SETTINGS = [
    "on a rocky coast at dusk", "in a snowy forest", "over a neon city at night", "in a sunlit meadow",
    "on the surface of mars", "under a stormy sky", "in a quiet japanese garden", "at the bottom of the sea",
    "in a busy market", "on a floating island", "in a desert at noon", "beside a frozen lake",
]
MEDIA = [
    "oil painting", "watercolour", "35mm photograph", "isometric 3d render", "pencil sketch", "ukiyo-e print",
    "pixel art", "studio photo", "charcoal drawing", "gouache illustration", "low-poly render", "linocut",
]
STYLE_TOPICS = [
    "logos", "landscapes", "portraits", "product shots", "book covers", "city scenes", "animals", "posters",
    "food photos", "interiors", "characters", "maps",
]
STYLE_LOOKS = [
    "muted watercolour", "flat vector shapes in two colours", "soft rim lighting", "high-contrast black and "
    "white", "pastel candy colours", "grainy film look", "bold art deco geometry", "warm golden-hour light",
    "hand-drawn ink lines", "moody teal and orange grading", "clean minimal white backgrounds",
    "rich jewel tones",
]
NOTE_THINGS = [
    "my dog is a black labrador called Ink", "the client prefers square formats", "my sister's birthday is in "
    "May", "the band is called Paper Moons", "our café is named Bean There", "I am making a board game about "
    "islands", "the newsletter goes out on Fridays", "my cat Miso is orange", "the wedding colours are sage "
    "and cream", "the shop sells handmade candles",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def image_prompt(rng: random.Random, subject: str) -> str:
    return f"{rng.choice(ADJECTIVES)} {subject} {rng.choice(SETTINGS)}, {rng.choice(MEDIA)}"


def memory_text(rng: random.Random, i: int) -> tuple[str, str]:
    if i % 2:
        return "style", f"{rng.choice(STYLE_TOPICS)} should use {rng.choice(STYLE_LOOKS)} ({i})"
    return "note", f"{rng.choice(NOTE_THINGS)} (note {i})"


def build(home: Path, n: int, embedder: Embedder) -> dict[str, list[str]]:
    """Fill `home` with n items over USERS; returns each user's image subjects (for reference queries)."""
    marker = home / "bench.json"
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if saved.get("n") == n and saved.get("layout") == LAYOUT:
            print(f"  reusing {home}", file=sys.stderr)
            return dict(saved["subjects"])
    if home.exists():
        import shutil

        shutil.rmtree(home)
    home.mkdir(parents=True)
    settings = Settings(home=home)
    store = Store(settings.db_path)
    store.migrate()
    indexer = build_indexer(settings, store, embedder)
    assert indexer.take_index(), "the cache directory's index is locked by another process"
    picture = home / "shared-512.png"
    Image.new("RGB", (512, 512), (90, 140, 200)).save(picture)
    rng = random.Random(n)
    per_user = n // len(USERS)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    subjects: dict[str, list[str]] = {}
    began = time.perf_counter()
    for u, user in enumerate(USERS):
        memories, images = [], []
        for i in range(per_user // 2):
            kind, content = memory_text(rng, i)
            at = (start + timedelta(minutes=i * 7 + u)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            memories.append({"id": f"{u:02d}m{i:07d}", "user_id": user, "session_id": None, "content": content,
                             "kind": kind, "scope": "long_term", "tags": "[]", "pinned": int(i == 1),
                             "use_count": 0, "last_used_at": None, "replaces": None, "created_at": at,
                             "updated_at": at, **scope_columns(content, kind, None)})
        mine = rng.sample(SUBJECTS, 12)
        subjects[user] = mine
        for i in range(per_user - per_user // 2):
            at = (start + timedelta(minutes=i * 11 + u)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            prompt = image_prompt(rng, mine[i % len(mine)])
            images.append({"id": f"{u:02d}i{i:07d}", "user_id": user, "job_id": None, "parent_id": None,
                           "prompt": prompt, "final_prompt": prompt, "negative_prompt": None,
                           "provider": "placeholder", "model": "placeholder-1", "seed": i, "width": 512,
                           "height": 512, "format": "png", "path": str(picture), "applied": "{}",
                           "incognito": 0, "created_at": at, "search_text": prompt,
                           "subjects": subjects_text(lexicon().analyse(prompt))})
        with store.write() as db:
            db.table("memories").insert_all(memories, batch_size=500)
            db.table("images").insert_all(images, batch_size=500)
    print(f"  inserted {n} rows in {time.perf_counter() - began:.1f}s; embedding and indexing…", file=sys.stderr)
    began = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 15:
            last[0] = time.perf_counter()
            print(f"    {done}/{total} ({done / (last[0] - began):.0f} items/s)", file=sys.stderr)

    indexed = indexer.rebuild(progress)
    seconds = time.perf_counter() - began
    print(f"  indexed {indexed} items in {seconds:.0f}s ({indexed / seconds:.0f}/s)", file=sys.stderr)
    indexer.close()
    store.close()
    marker.write_text(json.dumps({"n": n, "layout": LAYOUT, "subjects": subjects, "index_seconds": seconds}))
    return subjects


async def time_calls(calls: int, one: Callable[[random.Random], Awaitable[Any]]) -> list[float]:
    rng = random.Random(7)
    for _ in range(10):  # warm caches (Chroma collections, SQLite pages, torch)
        await one(rng)
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        await one(rng)
        times.append((time.perf_counter() - began) * 1000)
    return times


async def measure(home: Path, subjects: dict[str, list[str]], calls: int,
                  embedder: Embedder) -> dict[str, list[float]]:
    settings = Settings(home=home, rate_limit_per_minute=0, openai_api_key="sk-bench-unused")
    app = App.create(settings, embedder=embedder)
    try:
        assert app.indexer.take_index(), "index not available"
        # What the server's warm-up does first: describe rows stored before descriptions and style keys
        # existed (a cache built by an older layout); a no-op on a fresh build.
        began = time.perf_counter()
        filled = fill_subjects(app.store) + fill_style_keys(app.store)
        print(f"  warm-up filled {filled} rows in {time.perf_counter() - began:.1f}s", file=sys.stderr)
        enricher = app.generations.enricher
        sessions = {user: app.sessions.touch(user, "bench") for user in USERS}

        def request(rng: random.Random, *, styles: bool, reference: bool, provider: str) -> Awaitable[Any]:
            user = rng.choice(USERS)
            inp = GenerationInput(
                prompt=image_prompt(rng, rng.choice(SUBJECTS)),
                reference=f"my last {rng.choice(subjects[user])} image" if reference else None,
                provider=provider, model="dall-e-3" if provider == "openai" else None,
                apply_memory=styles,
            )
            embedder.clear_cache()  # every timed call embeds its texts afresh (subjects repeat per user)
            return enricher.enrich(user, sessions[user], inp)

        shapes = {
            "styles + reference": dict(styles=True, reference=True, provider="openai"),
            "styles only": dict(styles=True, reference=False, provider="openai"),
            "reference only": dict(styles=False, reference=True, provider="openai"),
            "styles + reference, image-to-image": dict(styles=True, reference=True, provider="placeholder"),
        }
        # First with Chroma answering every query (a user's first requests after a start), then with the
        # in-process copies of the collections in use loaded, as the server's maintenance pass loads them
        # (adapters/vector_cache.py).
        results = {f"{name} (Chroma)": await time_calls(calls, lambda rng, kw=kw: request(rng, **kw))  # type: ignore[misc]
                   for name, kw in shapes.items()}
        while app.indexer.copies_wanted():  # what the server's warm-up loop does in the background
            app.indexer.load_copies()
        results.update({f"{name} (copies)": await time_calls(calls, lambda rng, kw=kw: request(rng, **kw))  # type: ignore[misc]
                        for name, kw in shapes.items()})
        return results
    finally:
        await app.aclose()


async def cold_starts(home: Path, spawns: int) -> tuple[list[float], list[float]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONTEXT_SERVER_HOME": str(home),
           "CONTEXT_SERVER_USER": USERS[0], "CONTEXT_SERVER_LOG_LEVEL": "WARNING",
           "CONTEXT_SERVER_MODEL_CACHE": str(home.parent / "models")}  # the export this script made
    params = StdioServerParameters(command=sys.executable, args=["-m", "context_server.cli"], env=env,
                                   cwd=str(ROOT))
    first_list, first_search = [], []
    for _ in range(spawns):
        began = time.perf_counter()
        async with Client(params) as client:
            await client.list_tools()
            first_list.append(time.perf_counter() - began)
            result = await client.call_tool("search_memories", {"query": "muted watercolour landscapes"})
            assert not result.is_error and result.structured_content and result.structured_content["memories"]
            first_search.append(time.perf_counter() - began)
    return first_list, first_search


def row(name: str, values: list[float], unit: str = "ms") -> str:
    return (f"| {name} | {len(values)} | {statistics.median(values):.1f} | {percentile(values, 0.95):.1f} "
            f"| {max(values):.1f} | {unit} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated item counts; add 100000 for the full run (builds for a long while on 2 cores)")
    parser.add_argument("--calls", type=int, default=300, help="timed enrich calls per size and shape")
    parser.add_argument("--spawns", type=int, default=20, help="server spawns for the cold-start figures")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "context-server-bench",
                        help="where built data directories are kept between runs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    # The production embedder: ONNX Runtime over the exported packaged weights (see adapters/onnx_encoder.py).
    embedder = Embedder(threads=min(os.cpu_count() or 1, 2), cache_dir=args.cache / "models")
    embedder.start()
    embedder.wait()
    lines = ["| items (20 users) | shape | calls | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|---|"]
    for n in sizes:
        home = args.cache / f"n{n}"
        print(f"N={n}: building", file=sys.stderr)
        subjects = build(home, n, embedder)
        print(f"N={n}: measuring", file=sys.stderr)
        for shape, times in (await measure(home, subjects, args.calls, embedder)).items():
            lines.append(f"| {n:,} | {shape} | {len(times)} | {statistics.median(times):.1f} "
                         f"| {percentile(times, 0.95):.1f} | {max(times):.1f} |")
        print("\n".join(lines), file=sys.stderr)
    print(f"context-server enrichment benchmark ({os.cpu_count()} cores, python {sys.version.split()[0]})")
    print("\n".join(lines))
    if args.spawns:
        home = args.cache / f"n{max(sizes)}"
        lists, searches = await cold_starts(home, args.spawns)
        print(f"\ncold start on the {max(sizes):,}-item data directory, {args.spawns} spawns")
        print("| measure | n | p50 | p95 | max | unit |\n|---|---|---|---|---|---|")
        print(row("spawn → first tools/list", [s * 1000 for s in lists]))
        print(row("spawn → first search_memories", [s * 1000 for s in searches]))


if __name__ == "__main__":
    asyncio.run(main())
