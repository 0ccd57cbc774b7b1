"""The memory, profile and image-search tools as a client sees them: one test per behaviour, through the
in-memory MCP client over real SQLite, Chroma and the embedder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from context_server.app import App
from context_server.server import build_server
from context_server.settings import Settings

from .conftest import call, call_error

pytestmark = pytest.mark.anyio

SMALL = {"width": 64, "height": 64}


def count(app: App, table: str, user: str = "local") -> int:
    row = app.store.one(f"select count(*) as n from {table} where user_id = ?", [user])
    return int(row["n"]) if row else 0


async def memories(client: Client, **args: Any) -> list[dict[str, Any]]:
    return list((await call(client, "get_all_memories", **args))["memories"])


async def read_json(client: Client, uri: str) -> Any:
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


# --- save_memory ---------------------------------------------------------------------------------------


async def test_save_memory_stores_each_kind_with_its_scope_tags_and_pin(client: Client) -> None:
    saved = {}
    for kind in ("style", "preference", "fact", "note"):
        saved[kind] = await call(client, "save_memory", content=f"a {kind} worth keeping", kind=kind,
                                 tags=[kind, "test"], pinned=kind == "style")
        assert (saved[kind]["kind"], saved[kind]["scope"], saved[kind]["merged_into"]) == (kind, "long_term", None)
    default = await call(client, "save_memory", content="no kind given")
    assert (default["kind"], default["scope"]) == ("note", "long_term")
    session = await call(client, "save_memory", content="sepia for this chat", kind="style", scope="session")
    assert session["scope"] == "session"

    listed = {m["memory_id"]: m for m in await memories(client)}
    assert set(listed) == {s["memory_id"] for s in (*saved.values(), default, session)}
    style = listed[saved["style"]["memory_id"]]
    assert (style["content"], style["tags"], style["pinned"], style["use_count"], style["last_used_at"]) == (
        "a style worth keeping", ["style", "test"], True, 0, None)
    assert not listed[saved["note"]["memory_id"]]["pinned"]


async def test_a_repeated_memory_is_merged_and_says_into_which(client: Client, app: App) -> None:
    first = await call(client, "save_memory", content="I prefer watercolor illustrations", kind="preference",
                       tags=["medium"])
    again = await call(client, "save_memory", content="Watercolor illustrations are my preference",
                       kind="preference", tags=["look"], pinned=True)
    assert again["merged_into"] == again["memory_id"] == first["memory_id"]
    [kept] = await memories(client)
    assert (kept["content"], kept["tags"], kept["pinned"]) == (
        "I prefer watercolor illustrations", ["medium", "look"], True)
    assert count(app, "memories") == 1


async def test_replaces_supersedes_the_old_memory(client: Client) -> None:
    old = await call(client, "save_memory", content="Always use a 4:3 aspect ratio", kind="preference")
    new = await call(client, "save_memory", content="Always use a 16:9 aspect ratio", kind="preference",
                     replaces=old["memory_id"])
    assert new["memory_id"] != old["memory_id"] and new["merged_into"] is None
    assert [m["memory_id"] for m in await memories(client)] == [new["memory_id"]]
    found = await call(client, "search_memories", query="aspect ratio")
    assert [m["memory_id"] for m in found["memories"]] == [new["memory_id"]]


async def test_control_bidi_and_tag_characters_are_stripped_on_save(client: Client) -> None:
    sneaky = "Use\u202e red\u2066 tones\u200b\x00\x07\n\tplease \U000e0049\U000e0067nore"
    saved = await call(client, "save_memory", content=sneaky, tags=["a\u200bb", " c\u202d "])
    [memory] = await memories(client)
    assert memory["memory_id"] == saved["memory_id"]
    assert (memory["content"], memory["tags"]) == ("Use red tones please nore", ["ab", "c"])


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        ({"content": "x" * 2001}, "content must be 1..2000 characters; got 2001 characters"),
        ({"content": "\u200b\u202e \x07"}, "1 to 2000 characters"),
        ({"content": "fine", "kind": "opinion"}, 'kind must be one of style, preference, fact, note; got "opinion"'),
        ({"content": "fine", "scope": "forever"}, 'scope must be one of long_term, session; got "forever"'),
        ({"content": "fine", "tags": [f"t{i}" for i in range(21)]}, "at most 20 items"),
        ({"content": "fine", "tags": ["x" * 65]}, "at most 64 characters"),
        ({"content": "fine", "replaces": "0" * 24}, "not found"),
    ],
)
async def test_bad_memory_input_is_refused_naming_what_is_allowed_and_changes_nothing(
    client: Client, app: App, args: dict[str, Any], allowed: str
) -> None:
    error = await call_error(client, "save_memory", **args)
    assert allowed in error, error
    assert count(app, "memories") == 0 and app.store.one("select 1 as x from outbox") is None


# --- get_all_memories ----------------------------------------------------------------------------------


async def test_get_all_memories_is_newest_first_paged_and_filtered(client: Client) -> None:
    ids = [(await call(client, "save_memory", content=f"fact {i}: {'abcdefg'[i] * 4} is true",
                       kind="fact"))["memory_id"] for i in range(7)]
    style = (await call(client, "save_memory", content="grainy film look", kind="style"))["memory_id"]
    pages, cursor = [], None
    while True:
        page = await call(client, "get_all_memories", kind="fact", limit=3,
                          **({"cursor": cursor} if cursor else {}))
        pages.append([m["memory_id"] for m in page["memories"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == ids[::-1]
    assert [m["memory_id"] for m in await memories(client, kind="style")] == [style]
    assert len(await memories(client, scope="long_term")) == 8
    assert await memories(client, scope="session") == []
    assert "cursor is not valid" in await call_error(client, "get_all_memories", cursor="garbage")
    assert "limit must be 1..200; got 201" in await call_error(client, "get_all_memories", limit=201)


async def test_session_memories_are_seen_only_in_their_session(
    make_settings: Callable[..., Settings], embedder: Any
) -> None:
    """Over stdio the process is the connection: a restarted server is a new session and must not see
    (or apply) the previous session's memories, while long-term ones carry over."""
    settings = make_settings()
    first = App.create(settings, embedder=embedder)
    async with Client(build_server(first)) as client:
        here = await call(client, "save_memory", content="everything in sepia for now", kind="style",
                          scope="session")
        lasting = await call(client, "save_memory", content="likes foggy harbours", kind="style")
        assert {m["memory_id"] for m in await memories(client)} == {here["memory_id"], lasting["memory_id"]}
        assert [m["memory_id"] for m in await memories(client, scope="session")] == [here["memory_id"]]
        assert [m["memory_id"] for m in await read_json(client, "memory://all")] == [lasting["memory_id"]]
        found = await call(client, "search_memories", query="sepia tone")
        assert found["memories"][0]["memory_id"] == here["memory_id"]
        dry = await call(client, "generate_image", prompt="a cat on a sofa", dry_run=True)
        assert here["memory_id"] in [s["memory_id"] for s in dry["applied"]["styles"]]
    await first.aclose()  # the stdio connection ends with the process: its session memories go

    second = App.create(settings, embedder=embedder)
    async with Client(build_server(second)) as client:
        assert [m["memory_id"] for m in await memories(client)] == [lasting["memory_id"]]
        assert await memories(client, scope="session") == []
        found = await call(client, "search_memories", query="sepia tone")
        assert here["memory_id"] not in [m["memory_id"] for m in found["memories"]]
        dry = await call(client, "generate_image", prompt="a cat on a sofa", dry_run=True)
        assert here["memory_id"] not in [s["memory_id"] for s in dry["applied"]["styles"]]
        assert second.store.one("select 1 as x from memories where scope = 'session'") is None
    await second.aclose()


# --- search_memories / update_memory / delete_memory ---------------------------------------------------


async def test_search_memories_ranks_by_meaning_with_scores_and_a_kind_filter(client: Client) -> None:
    dog = await call(client, "save_memory", content="My dog is a black labrador called Ink", kind="fact")
    await call(client, "save_memory", content="Prefer flat vector illustrations", kind="style")
    await call(client, "save_memory", content="Budget is twenty dollars a month", kind="fact")
    found = (await call(client, "search_memories", query="what breed is my pet?", limit=3))["memories"]
    assert found[0]["memory_id"] == dog["memory_id"]
    scores = [m["score"] for m in found]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    only_facts = (await call(client, "search_memories", query="dog illustrations", kind="fact", limit=5))["memories"]
    assert only_facts and {m["kind"] for m in only_facts} == {"fact"}
    assert "limit" in await call_error(client, "search_memories", query="x", limit=51)


async def test_update_memory_changes_it_and_search_follows(client: Client) -> None:
    saved = await call(client, "save_memory", content="Prefers cinematic lighting", kind="style", tags=["a"])
    updated = await call(client, "update_memory", memory_id=saved["memory_id"],
                         content="Prefers pastel candy colours", tags=["b"], pinned=True, kind="preference")
    assert (updated["content"], updated["tags"], updated["pinned"], updated["kind"]) == (
        "Prefers pastel candy colours", ["b"], True, "preference")
    assert updated["updated_at"] > updated["created_at"]
    found = (await call(client, "search_memories", query="pastel colours", limit=1))["memories"]
    assert found[0]["memory_id"] == saved["memory_id"] and found[0]["content"] == "Prefers pastel candy colours"
    assert "nothing to update" in await call_error(client, "update_memory", memory_id=saved["memory_id"])
    assert "not found" in await call_error(client, "update_memory", memory_id="0" * 24, content="x")


async def test_delete_memory_forgets_it_everywhere(client: Client, app: App) -> None:
    saved = await call(client, "save_memory", content="Loves art deco posters", kind="style")
    assert (await call(client, "search_memories", query="art deco"))["memories"]
    deleted = await call(client, "delete_memory", memory_id=saved["memory_id"])
    assert deleted == {"deleted": True, "id": saved["memory_id"]}
    assert await memories(client) == []
    assert (await call(client, "search_memories", query="art deco posters"))["memories"] == []
    assert app.indexer._index is not None and app.indexer._index.count("local", "memories") == 0
    assert "not found" in await call_error(client, "delete_memory", memory_id=saved["memory_id"])


# --- profile -------------------------------------------------------------------------------------------


async def test_profile_defaults_fill_a_dry_run_and_the_receipt_lists_exactly_those(client: Client) -> None:
    assert await call(client, "get_profile") == {
        "default_provider": None, "default_model": None, "default_aspect_ratio": None,
        "default_negative_prompt": None, "style_strength": "light", "daily_budget_usd": None}
    profile = await call(client, "update_profile", default_provider="placeholder", default_aspect_ratio="16:9",
                         default_negative_prompt="blurry, text", daily_budget_usd=2.5)
    assert (profile["default_aspect_ratio"], profile["daily_budget_usd"]) == ("16:9", 2.5)

    bare = await call(client, "generate_image", prompt="a harbour at dawn", dry_run=True)
    assert bare["applied"]["profile"] == {"provider": "placeholder", "aspect_ratio": "16:9",
                                          "negative_prompt": "blurry, text"}
    assert bare["width"] > bare["height"] and bare["negative_prompt"] == "blurry, text"

    explicit = await call(client, "generate_image", prompt="a harbour at dawn", dry_run=True, provider="placeholder",
                          negative_prompt="people", width=256, height=256)
    assert explicit["applied"]["profile"] == {}
    assert (explicit["width"], explicit["height"], explicit["negative_prompt"]) == (256, 256, "people")

    cleared = await call(client, "update_profile", default_negative_prompt="", default_aspect_ratio="")
    assert cleared["default_negative_prompt"] is None and cleared["default_aspect_ratio"] is None
    again = await call(client, "generate_image", prompt="a harbour at dawn", dry_run=True)
    assert again["applied"]["profile"] == {"provider": "placeholder"}


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        ({"style_strength": "medium"}, 'style_strength must be one of off, light, strong; got "medium"'),
        ({"default_provider": "nope"}, "use one of placeholder"),
        ({"default_aspect_ratio": "5:4"}, 'default_aspect_ratio must be one of 1:1, 16:9, 9:16, 3:2, 2:3, 4:3, 3:4, ""'),
        ({"daily_budget_usd": -1}, "daily_budget_usd must be at least 0; got -1"),
    ],
)
async def test_bad_profile_values_are_refused_and_change_nothing(
    client: Client, args: dict[str, Any], allowed: str
) -> None:
    before = await call(client, "update_profile", style_strength="strong")
    error = await call_error(client, "update_profile", **args)
    assert allowed in error, error
    assert await call(client, "get_profile") == before


async def test_memory_all_and_profile_me_resources(client: Client) -> None:
    a = await call(client, "save_memory", content="muted earth tones", kind="style", pinned=True)
    b = await call(client, "save_memory", content="my cat is called Miso", kind="fact")
    listed = await read_json(client, "memory://all")
    assert [m["memory_id"] for m in listed] == [b["memory_id"], a["memory_id"]]
    assert listed[1]["pinned"] and listed[0]["kind"] == "fact"
    await call(client, "update_profile", style_strength="strong", default_aspect_ratio="3:2")
    profile = await read_json(client, "profile://me")
    assert (profile["style_strength"], profile["default_aspect_ratio"]) == ("strong", "3:2")


# --- search_images -------------------------------------------------------------------------------------


async def test_search_images_ranks_by_meaning_and_recency_breaks_ties(client: Client) -> None:
    older = await call(client, "generate_image", prompt="a red spaceship landing on mars", **SMALL)
    ramen = await call(client, "generate_image", prompt="a steaming bowl of ramen", **SMALL)
    newer = await call(client, "generate_image", prompt="a red spaceship landing on mars", **SMALL)
    hits = (await call(client, "search_images", query="rocket ship on another planet", limit=3))["images"]
    # The ramen image scores under the relevance floor for this query, so it is left out.
    assert [h["image_id"] for h in hits] == [newer["image_id"], older["image_id"]]
    assert hits[0]["score"] == hits[1]["score"]
    assert hits[0]["uri"] == f"image://{newer['image_id']}/view" and hits[0]["created_at"]
    noodles = (await call(client, "search_images", query="noodle soup", limit=1))["images"]
    assert [h["image_id"] for h in noodles] == [ramen["image_id"]]


# --- what the memory switches do ----------------------------------------------------------------------


async def test_apply_memory_false_adds_nothing_from_memory(client: Client, app: App) -> None:
    style = await call(client, "save_memory", content="everything in neon colours", kind="style", pinned=True)
    await call(client, "update_profile", default_aspect_ratio="16:9", default_negative_prompt="blurry")
    made = await call(client, "generate_image", prompt="a lighthouse", apply_memory=False, **SMALL)
    assert made["final_prompt"] == "a lighthouse" and made["negative_prompt"] is None
    assert made["applied"] == {"styles": [], "profile": {}, "template": None, "template_version": None,
                               "reference": None, "left_out": []}
    assert (await call(client, "update_memory", memory_id=style["memory_id"], tags=["x"]))["use_count"] == 0


async def test_dry_run_reports_the_receipt_but_stores_nothing(client: Client, app: App, home: Path) -> None:
    style = await call(client, "save_memory", content="everything in neon colours", kind="style", pinned=True)
    dry = await call(client, "generate_image", prompt="a lighthouse", dry_run=True)
    assert dry["dry_run"] and dry["status"] == "completed"
    assert dry["image_id"] is None and dry["job_id"] is None and dry["path"] is None
    assert dry["final_prompt"] == "a lighthouse, in neon colours"
    assert [s["memory_id"] for s in dry["applied"]["styles"]] == [style["memory_id"]]
    assert [count(app, t) for t in ("images", "jobs", "usage")] == [0, 0, 0]
    assert app.store.one("select 1 as x from outbox where collection = 'images'") is None
    assert not (home / "images").exists() or not any((home / "images").rglob("*.png"))
    assert (await memories(client))[0]["use_count"] == 0
    assert (await call(client, "list_recent_generations"))["generations"] == []


async def test_incognito_returns_the_image_but_remembers_nothing_about_the_call(client: Client, app: App) -> None:
    """What incognito means, as decided: the caller still gets a real image — `image_id`, a `uri` that
    serves it, a `path` and `get_generation(job_id)` all work, because the user asked for a picture and
    must be able to open it — and memory still *applies* (styles, profile: the user asked for those too).
    What it does not do is remember: the image is never listed (`list_recent_generations`, `image://list`),
    never searched (`search_images`), never indexed in Chroma, never a reference candidate by words or as
    "the previous one" (only its exact id, which only this caller holds, still resolves), and the memories
    it used keep their `use_count`."""
    style = await call(client, "save_memory", content="everything in neon colours", kind="style", pinned=True)
    before = await call(client, "generate_image", prompt="a cat sleeping on a windowsill", **SMALL)
    secret = await call(client, "generate_image", prompt="a secret birthday cake for Sam", incognito=True, **SMALL)

    assert secret["status"] == "completed" and secret["incognito"]
    assert Path(secret["path"]).is_file()
    assert secret["uri"] == f"image://{secret['image_id']}/view"
    view = await client.read_resource(secret["uri"])
    assert view.contents[0].mime_type == "image/png"
    assert (await call(client, "get_generation", job_id=secret["job_id"]))["image_id"] == secret["image_id"]
    assert [s["memory_id"] for s in secret["applied"]["styles"]] == [style["memory_id"]]

    listed = (await call(client, "list_recent_generations"))["generations"]
    assert [g["image_id"] for g in listed] == [before["image_id"]]
    assert [i["image_id"] for i in (await read_json(client, "image://list"))["images"]] == [before["image_id"]]
    hits = (await call(client, "search_images", query="birthday cake", limit=5))["images"]
    assert secret["image_id"] not in [h["image_id"] for h in hits]
    assert app.indexer._index is not None and app.indexer._index.count("local", "images") == 1

    previous = await call(client, "generate_image", prompt="make it blue", reference="the previous one",
                          dry_run=True)
    assert previous["applied"]["reference"]["image_id"] == before["image_id"]
    assert "no image of yours matches" in await call_error(
        client, "generate_image", prompt="again", reference="my last birthday cake image", dry_run=True)
    by_id = await call(client, "generate_image", prompt="again", reference=secret["image_id"], dry_run=True)
    assert by_id["applied"]["reference"]["image_id"] == secret["image_id"]

    used = (await memories(client, kind="style"))[0]
    assert used["use_count"] == 1  # the non-incognito image only


async def test_applying_a_style_bumps_use_count_and_last_used_at(client: Client) -> None:
    style = await call(client, "save_memory", content="soft film grain", kind="style", pinned=True)
    unused = await call(client, "save_memory", content="harsh flash photography of food", kind="style")
    await call(client, "generate_image", prompt="a mountain lake", **SMALL)
    await call(client, "generate_image", prompt="a desert road", **SMALL)
    listed = {m["memory_id"]: m for m in await memories(client)}
    applied = listed[style["memory_id"]]
    assert applied["use_count"] == 2 and applied["last_used_at"] >= applied["created_at"]
    assert (listed[unused["memory_id"]]["use_count"], listed[unused["memory_id"]]["last_used_at"]) == (0, None)


async def test_changing_a_memorys_kind_decides_whether_it_is_applied_as_a_style(client: Client) -> None:
    saved = await call(client, "save_memory", content="landscapes should be muted watercolour", kind="note")
    prompt = "a mountain landscape with a river at sunset"
    assert (await call(client, "generate_image", prompt=prompt, dry_run=True))["applied"]["styles"] == []
    await call(client, "update_memory", memory_id=saved["memory_id"], kind="style")
    applied = (await call(client, "generate_image", prompt=prompt, dry_run=True))["applied"]["styles"]
    assert [s["memory_id"] for s in applied] == [saved["memory_id"]]
    await call(client, "update_memory", memory_id=saved["memory_id"], kind="fact")
    assert (await call(client, "generate_image", prompt=prompt, dry_run=True))["applied"]["styles"] == []


async def test_a_reference_that_matches_nothing_is_refused_even_when_styles_apply(client: Client) -> None:
    """Styles and the reference are looked up at the same time; a failed lookup is still one clear error."""
    await call(client, "save_memory", content="landscapes should be muted watercolour", kind="style")
    await call(client, "generate_image", prompt="a lighthouse in a storm", **SMALL)
    message = await call_error(client, "generate_image", prompt="a mountain landscape at dawn",
                               reference="my last giraffe image", dry_run=True)
    assert "no image of yours matches 'giraffe'" in message
    used = await call(client, "generate_image", prompt="a mountain landscape at dawn",
                      reference="my last lighthouse image", dry_run=True)
    assert used["applied"]["reference"]["prompt"] == "a lighthouse in a storm"
    assert used["applied"]["reference"]["mode"] == "image_to_image"  # the placeholder model takes an image
    assert used["final_prompt"] == "a mountain landscape at dawn, muted watercolour"
