"""Two servers on one data directory (Claude Desktop sometimes starts two): only the first holds the vector
index, and the second gives the same answers from its first second, references and rankings alike. It may
be slower; it may never answer differently. The first runs in this process (`served`), the second is the
installed command over stdio: two processes, as on a user's machine, for one process start instead of two."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from context_server.adapters.embedder import Embedder
from context_server.settings import Settings

from .conftest import call, served, stdio_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PROMPTS = ("a silver spaceship landing on a red desert", "a bowl of ramen on a wooden table",
           "a lighthouse on a rocky coast at dusk", "a field of sunflowers under a blue sky")
QUERIES = ("spaceship", "noodle soup", "sea at night", "summer flowers")


def ranking(found: dict[str, Any]) -> list[tuple[str, float]]:
    return [(hit["image_id"], round(hit["score"], 2)) for hit in found["images"]]


async def answers(client: Client) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for query in QUERIES:
        got[query] = ranking(await call(client, "search_images", query=query, limit=4))
    memories = await call(client, "search_memories", query="how pictures should look", limit=3)
    got["memories"] = [(m["memory_id"], round(m["score"], 2)) for m in memories["memories"]]
    preview = await call(client, "generate_image", prompt="the same ship taking off",
                         reference="my last spaceship image", provider="placeholder", dry_run=True)
    got["reference"] = (preview["applied"].get("reference") or {}).get("image_id")
    return got


async def test_a_second_server_answers_like_the_one_holding_the_index_from_its_first_second(
        home: Path, make_settings: Callable[..., Settings], embedder: Embedder) -> None:
    async with served(make_settings(), embedder) as first:
        await call(first, "save_memory", content="soft pastel colours, hand-drawn look", kind="style")
        await call(first, "save_memory", content="my cat is called Miso", kind="fact")
        made = [await call(first, "generate_image", prompt=p, provider="placeholder", width=64, height=64)
                for p in PROMPTS]
        holder = await answers(first)  # its first search took the index; every change is indexed
        assert holder["reference"] == made[0]["image_id"]
        assert holder["spaceship"][0][0] == made[0]["image_id"]

        async with Client(stdio_server(home)) as second:
            assert await answers(second) == holder
            # A change made by the second server is found, and ranked, alike by both at once.
            await call(second, "generate_image", prompt="an old spaceship rusting in a field",
                       provider="placeholder", width=64, height=64)
            seen_by_second = await answers(second)
            assert seen_by_second == await answers(first)
            assert seen_by_second["spaceship"] != holder["spaceship"]
