"""Where to put the relevance floor of search_images and search_memories: score distributions, measured.

    python bench/relevance.py [--cache DIR]

Embeds a corpus of 40 image prompts and 24 memories of the kind users write, with the production
embedder (all-MiniLM-L6-v2 through `adapters/embedder.py`), and scores queries against it the way the
index does (cosine similarity clipped to [0, 1], `adapters/index.py`):

- related queries: what a user types to find one of those items (a word of its subject, a paraphrase,
  a partial description); the figure is the score of the item the query is about;
- unrelated queries: subjects that appear nowhere in the corpus (the issue's "dinosaur" among them);
  the figure is the best score any item gets, i.e. what a search would show if it had no floor.

It prints min / p5 / median / p95 / max of both, and how many of each a floor at 0.25 .. 0.45 keeps.
The floor in `server/results.py` (`RELEVANCE_FLOOR`) comes from this table; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from context_server.adapters.embedder import Embedder  # noqa: E402

IMAGES = [
    "a red dragon flying over a castle at dusk",
    "a lighthouse on a cliff in a storm, crashing waves",
    "portrait of an old fisherman with a white beard",
    "logo for a coffee shop called Bean There, flat vector",
    "a spaceship landing on a red desert planet",
    "a cozy reading nook with a cat asleep on a pile of books",
    "isometric view of a tiny medieval village",
    "a bowl of fruit on a wooden table, still life",
    "a cyberpunk street at night with neon signs and rain",
    "a watercolour fox in the snow",
    "children's book illustration of a bear having a picnic",
    "product shot of a glass perfume bottle on marble",
    "a mountain lake at sunrise with pine trees",
    "pixel art knight fighting a slime",
    "a sticker of a smiling avocado",
    "concept art of a floating city in the clouds",
    "a vintage travel poster for Lisbon",
    "an astronaut riding a horse on the moon",
    "macro photo of a dew drop on a leaf",
    "a steampunk airship above a harbour",
    "an owl perched on a branch under a full moon",
    "a sailboat on a calm sea at sunset",
    "a robot watering plants in a greenhouse",
    "a colouring page of a unicorn in a meadow",
    "an anime girl with a red umbrella in the rain",
    "a bakery storefront with fresh bread in the window",
    "a haunted house on a hill with bats",
    "an underwater coral reef with tropical fish",
    "a samurai standing in a bamboo forest",
    "a hot air balloon festival over fields",
    "a minimalist logo of a mountain for an outdoor brand",
    "a jazz band playing in a smoky club",
    "a snowy cabin with smoke from the chimney",
    "a dragon egg glowing in a nest of embers",
    "a city skyline reflected in a river at night",
    "a golden retriever puppy playing in autumn leaves",
    "a wizard's desk with potions and old maps",
    "a futuristic sports car in a tunnel of light",
    "a field of sunflowers under a blue sky",
    "a chess board with glass pieces, dramatic lighting",
]

# (query, index of the image it is about)
IMAGE_QUERIES = [
    ("dragon", 0), ("the castle with the dragon", 0), ("lighthouse", 1), ("stormy sea", 1),
    ("old man portrait", 2), ("coffee logo", 3), ("spaceship", 4), ("rocket on mars", 4),
    ("cat with books", 5), ("medieval village", 6), ("fruit still life", 7), ("neon city", 8),
    ("fox", 9), ("bear picnic", 10), ("perfume", 11), ("mountain lake", 12), ("knight", 13),
    ("avocado sticker", 14), ("city in the sky", 15), ("Lisbon poster", 16), ("astronaut", 17),
    ("water drop close-up", 18), ("airship", 19), ("owl at night", 20), ("boat at sunset", 21),
    ("robot gardener", 22), ("unicorn", 23), ("girl with umbrella", 24), ("bread shop", 25),
    ("spooky house", 26), ("fish under the sea", 27), ("samurai", 28), ("balloons", 29),
    ("outdoor brand logo", 30), ("jazz", 31), ("cabin in winter", 32), ("puppy", 35),
    ("wizard", 36), ("sports car", 37), ("sunflowers", 38), ("chess", 39),
]

MEMORIES = [
    "I like muted watercolour palettes",
    "always use a 16:9 aspect ratio for wallpapers",
    "my brand colours are teal and orange",
    "I prefer flat vector style for logos",
    "portraits should have soft natural light",
    "no text in the images please",
    "my dog is a golden retriever called Max",
    "I am making a children's book about a bear",
    "keep backgrounds simple and uncluttered",
    "use film grain and warm tones for photos",
    "my shop sells handmade candles",
    "I don't like neon colours",
    "the game I'm designing is set in a pixel art fantasy world",
    "avoid gore and violence",
    "my daughter loves unicorns",
    "for posters use bold typography and high contrast",
    "I live in Lisbon",
    "prefer square images for Instagram",
    "my logo has a mountain in it",
    "I'm allergic to cats (not relevant to pictures, just a fact)",
    "cinematic wide shots for landscapes",
    "pastel colours for the nursery project",
    "my company is called Bean There Coffee",
    "use a dark moody style for the horror book covers",
]

MEMORY_QUERIES = [
    ("watercolour", 0), ("aspect ratio for wallpapers", 1), ("brand colours", 2), ("logo style", 3),
    ("portrait lighting", 4), ("text in images", 5), ("my dog", 6), ("children's book", 7),
    ("background", 8), ("photo style", 9), ("candles", 10), ("neon", 11), ("pixel art game", 12),
    ("violence", 13), ("unicorn", 14), ("poster typography", 15), ("where do I live", 16),
    ("instagram format", 17), ("mountain logo", 18), ("landscape shots", 20), ("nursery colours", 21),
    ("coffee company name", 22), ("horror covers", 23),
]

UNRELATED = [
    "dinosaur", "tax return forms", "a bowl of ramen", "submarine", "birthday cake", "giraffe",
    "spreadsheet", "volcano eruption", "electric guitar", "penguins on ice", "hospital corridor",
    "football stadium", "a pair of sneakers", "tractor", "wedding dress", "quantum physics",
    "traffic jam", "kangaroo", "sushi platter", "skateboard trick",
]

FLOORS = (0.25, 0.3, 0.35, 0.4, 0.45)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = (sum(x * x for x in a) ** 0.5) * (sum(y * y for y in b) ** 0.5)
    return max(0.0, min(1.0, dot / norm))


def quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    cut = statistics.quantiles(ordered, n=20)
    return (f"min {ordered[0]:.2f}  p5 {cut[0]:.2f}  median {statistics.median(ordered):.2f}  "
            f"p95 {cut[-1]:.2f}  max {ordered[-1]:.2f}  (n={len(ordered)})")


def measure(model: Embedder, corpus: list[str], queries: list[tuple[str, int]], label: str) -> None:
    docs = model.embed(corpus)
    related: list[float] = []
    top_is_target = 0
    for query, target in queries:
        vector = model.embed([query])[0]
        scores = [cosine(vector, d) for d in docs]
        related.append(scores[target])
        top_is_target += max(range(len(scores)), key=scores.__getitem__) == target
    unrelated = [max(cosine(model.embed([q])[0], d) for d in docs) for q in UNRELATED]
    print(f"\n{label}: {len(corpus)} items")
    print(f"  related (score of the intended item): {quantiles(related)}; ranked first {top_is_target}/{len(queries)}")
    print(f"  unrelated (best score of any item):   {quantiles(unrelated)}")
    for floor in FLOORS:
        kept = sum(s >= floor for s in related)
        leaked = sum(s >= floor for s in unrelated)
        print(f"  floor {floor:.2f}: keeps {kept}/{len(related)} related, lets {leaked}/{len(unrelated)} unrelated through")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=None, help="model cache directory (default: a temp dir)")
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="relevance-models-"))
    model = Embedder(threads=2, cache_dir=cache)
    model.start()
    model.wait(timeout=300)
    measure(model, IMAGES, IMAGE_QUERIES, "search_images (image prompts)")
    measure(model, MEMORIES, MEMORY_QUERIES, "search_memories (memories)")


if __name__ == "__main__":
    main()
