"""Every example at the top of issue 13, over the MCP client: which image a reference means, which styles a
prompt gets, and what the provider is sent. Assertions are on what a person checks: the chosen image, the
receipt (`applied`) and `final_prompt` / `negative_prompt`."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from .conftest import call, call_error

pytestmark = pytest.mark.anyio

SMALL = {"width": 64, "height": 64}


async def make(client: Client, *prompts: str) -> dict[str, str]:
    return {p: (await call(client, "generate_image", prompt=p, **SMALL))["image_id"] for p in prompts}


async def ref(client: Client, words: str) -> dict[str, Any]:
    made = await call(client, "generate_image", prompt="a new version of it", reference=words, dry_run=True)
    reference: dict[str, Any] = made["applied"]["reference"]
    return reference


def style_ids(result: dict[str, Any]) -> set[str]:
    return {s["memory_id"] for s in result["applied"]["styles"]}


async def test_look_alikes_are_not_the_subject(client: Client) -> None:
    ids = await make(client,
                     "a sleek silver starship docking at an orbital station",
                     "a spacecraft drifting past Saturn's rings",
                     "a golden retriever puppy in the snow",
                     "a dachshund on a red sofa",
                     "a dragon curled around a castle tower",
                     "a ship in a bottle on a dusty library shelf",
                     "the Space Needle in Seattle",
                     "a hot dog with mustard",
                     "a dragon fruit smoothie bowl")
    spaceship = await ref(client, "my last spaceship image")  # a spacecraft is what people call a spaceship
    assert spaceship["image_id"] == ids["a spacecraft drifting past Saturn's rings"]
    assert spaceship["reason"] == "newest of 2 spaceship images"
    assert [a["image_id"] for a in spaceship["alternatives"]] == [
        ids["a sleek silver starship docking at an orbital station"]]
    assert (await ref(client, "my last dog image"))["image_id"] == ids["a dachshund on a red sofa"]
    assert (await ref(client, "my last dragon image"))["image_id"] == ids["a dragon curled around a castle tower"]
    assert (await ref(client, "the puppy picture"))["image_id"] == ids["a golden retriever puppy in the snow"]
    assert (await ref(client, "my last food image"))["image_id"] == ids["a dragon fruit smoothie bowl"]
    hot_dog = await ref(client, "the hot dog one")
    assert hot_dog["image_id"] == ids["a hot dog with mustard"]
    assert (await ref(client, "the Space Needle picture"))["image_id"] == ids["the Space Needle in Seattle"]


async def test_first_and_session_words_pick_by_time(client: Client) -> None:
    ids = await make(client, "a tabby cat on a windowsill", "a red sports car", "a logo for a coffee shop",
                     "a black cat in the moonlight", "a vintage car on a coast road", "a wordmark for a startup")
    first_cat = await ref(client, "my first cat image")
    assert first_cat["image_id"] == ids["a tabby cat on a windowsill"]
    assert first_cat["reason"] == "oldest of 2 cat images"
    assert [a["image_id"] for a in first_cat["alternatives"]] == [ids["a black cat in the moonlight"]]
    assert (await ref(client, "my first car image"))["image_id"] == ids["a red sports car"]
    assert (await ref(client, "my first logo"))["image_id"] == ids["a logo for a coffee shop"]
    assert (await ref(client, "my last logo"))["image_id"] == ids["a wordmark for a startup"]
    assert (await ref(client, "my first image"))["image_id"] == ids["a tabby cat on a windowsill"]
    assert (await ref(client, "the one you just made"))["image_id"] == ids["a wordmark for a startup"]
    assert (await ref(client, "the one before that"))["image_id"] == ids["a vintage car on a coast road"]
    assert (await ref(client, "my second cat picture"))["image_id"] == ids["a black cat in the moonlight"]
    before = await ref(client, "the one before the black cat")
    assert before["image_id"] == ids["a logo for a coffee shop"]
    assert before["reason"] == "made just before the black cat image"


async def test_a_kind_counts_as_its_category(client: Client) -> None:
    ids = await make(client, "an astronaut planting a flag on the moon", "a steaming bowl of ramen",
                     "a corporate headshot of a CEO", "a lighthouse in a storm")
    assert (await ref(client, "my last space image"))["image_id"] == ids["an astronaut planting a flag on the moon"]
    assert (await ref(client, "my last food image"))["image_id"] == ids["a steaming bowl of ramen"]
    assert (await ref(client, "the noodle soup one"))["image_id"] == ids["a steaming bowl of ramen"]
    assert (await ref(client, "my last portrait"))["image_id"] == ids["a corporate headshot of a CEO"]


async def test_an_edit_keeps_its_sources_subject_through_a_chain(client: Client) -> None:
    ids = await make(client, "a sleek silver starship docking at an orbital station", "a cat on a sofa")
    blue = await call(client, "edit_image", image=ids["a sleek silver starship docking at an orbital station"],
                      instruction="make it blue")
    red = await call(client, "edit_image", image=blue["image_id"], instruction="make it red")
    assert red["applied"]["reference"]["prompt"] == (
        "a sleek silver starship docking at an orbital station; make it blue")
    await make(client, "a dog in a park")
    last = await ref(client, "my last spaceship image")
    assert last["image_id"] == red["image_id"]
    assert last["reason"] == "newest of 3 spaceship images"
    assert (await ref(client, "the blue spaceship"))["image_id"] == blue["image_id"]
    found = (await call(client, "search_images", query="red spaceship", limit=1))["images"]
    assert found[0]["image_id"] == red["image_id"]


async def test_no_match_lists_the_closest_images_and_never_guesses(client: Client) -> None:
    await make(client, "a hot dog with mustard", "a dragon fruit smoothie bowl")
    message = await call_error(client, "generate_image", prompt="x", reference="my last dog image", dry_run=True)
    assert "no image of yours matches 'dog'" in message and "image_id " in message
    assert "no image of yours matches" in await call_error(
        client, "generate_image", prompt="x", reference="my last dragon image", dry_run=True)


async def test_subject_styles_apply_to_their_subject_and_its_kinds(client: Client) -> None:
    logo = await call(client, "save_memory", kind="style",
                      content="For logos I want flat vector art with a maximum of two colors")
    assert logo["applies_to"] == "logos"
    saved = await call_text(client, content="When drawing portraits use soft rim lighting")
    portrait, text = saved
    assert portrait["applies_to"] == "portraits" and "about portraits" in text
    for prompt in ("a logo for a coffee shop called Bean There", "a minimalist emblem for a cycling club",
                   "a wordmark for a startup"):
        made = await call(client, "generate_image", prompt=prompt, dry_run=True)
        assert style_ids(made) == {logo["memory_id"]}, prompt
        assert made["final_prompt"] == f"{prompt}, flat vector art, at most two colors"
    fisherman = await call(client, "generate_image", prompt="a portrait of an old fisherman", dry_run=True)
    assert style_ids(fisherman) == {portrait["memory_id"]}
    for prompt in ("a mountain lake at dawn", "a hot dog stand at the fair", "a flag for a fictional country"):
        assert style_ids(await call(client, "generate_image", prompt=prompt, dry_run=True)) == set(), prompt


async def call_text(client: Client, **args: Any) -> tuple[dict[str, Any], str]:
    result = await client.call_tool("save_memory", {"kind": "style", **args})
    assert not result.is_error
    text = " ".join(getattr(c, "text", "") for c in result.content)
    return dict(result.structured_content or {}), text


async def test_an_always_style_applies_to_everything_and_the_specific_one_wins_its_subject(client: Client) -> None:
    always = await call(client, "save_memory", kind="style",
                        content="I always want my images in a soft watercolour style")
    logo = await call(client, "save_memory", kind="style",
                      content="For logos I want flat vector art with a maximum of two colors")
    assert always["applies_to"] == "always"
    cat = await call(client, "generate_image", prompt="a cat asleep in the sun", dry_run=True)
    assert style_ids(cat) == {always["memory_id"]}
    assert cat["final_prompt"] == "a cat asleep in the sun, soft watercolour style"
    bakery = await call(client, "generate_image", prompt="a logo for my bakery.", dry_run=True)
    assert style_ids(bakery) == {logo["memory_id"]}
    assert bakery["final_prompt"] == "a logo for my bakery, flat vector art, at most two colors"
    assert [o["memory_id"] for o in bakery["applied"]["left_out"]] == [always["memory_id"]]
    dusk = await call(client, "generate_image", prompt="a harbour at dusk.", dry_run=True)
    assert dusk["final_prompt"] == "a harbour at dusk, soft watercolour style" and ".." not in dusk["final_prompt"]


async def test_negative_preferences_go_to_the_negative_prompt(client: Client) -> None:
    await call(client, "update_profile", default_negative_prompt="blurry")
    neon = await call(client, "save_memory", kind="style", content="never use neon colours")
    text = await call(client, "save_memory", kind="style", content="no text in my images")
    made = await call(client, "generate_image", prompt="a night market in the rain", dry_run=True)
    assert made["negative_prompt"] == "blurry, text, neon colours"  # newest memory first
    assert "neon" not in made["final_prompt"] and made["final_prompt"] == "a night market in the rain"
    placements = {s["memory_id"]: s["placement"] for s in made["applied"]["styles"]}
    assert placements == {neon["memory_id"]: "negative", text["memory_id"]: "negative"}


async def test_facts_and_notes_never_reach_the_prompt_and_applies_to_corrects_a_scope(client: Client) -> None:
    fact = await call(client, "save_memory", kind="fact", content="My dog is called Biscuit")
    assert fact["applies_to"] is None
    style = await call(client, "save_memory", kind="style", content="warm golden-hour light")
    made = await call(client, "generate_image", prompt="my dog Biscuit playing fetch", dry_run=True)
    assert style_ids(made) == {style["memory_id"]} and "Biscuit" not in made["final_prompt"].split(",", 1)[1]
    await call(client, "update_memory", memory_id=style["memory_id"], applies_to="landscapes")
    assert style_ids(await call(client, "generate_image", prompt="my dog playing fetch", dry_run=True)) == set()
    hills = await call(client, "generate_image", prompt="rolling hills in Tuscany", dry_run=True)
    assert style_ids(hills) == {style["memory_id"]}
    listed = (await call(client, "get_all_memories", kind="style"))["memories"]
    assert listed[0]["applies_to"] == "landscapes"
    assert "applies_to is for style memories" in await call_error(
        client, "update_memory", memory_id=fact["memory_id"], applies_to="always")
