"""What the model reads: every tool's text, its size, the tool list's size, and argument errors.

Claude reads a tool's `content` text (many clients pass nothing else), so these tests drive each tool over
the MCP client and check the text for what the model needs to answer and to make the next call. The
examples at the top of issue 14 are here as tests, each named for what it checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.types import CallToolResult, ImageContent, ResourceLink, TextContent

from context_server.adapters.providers.openai import OpenAIProvider
from context_server.adapters.providers.placeholder import PlaceholderProvider
from context_server.app import App
from context_server.domain.search.relevance import RELEVANCE_FLOOR
from context_server.server import build_server
from context_server.server.http import HostOriginGuard, transport_security
from context_server.server.results import STRUCTURED_BUDGET, TEXT_BUDGET
from context_server.server.tool_list import MODEL_FACING_BUDGET, TOOL_LIST_BUDGET
from context_server.settings import Settings
from tests.fakes import OpenAIFake

from .conftest import call

pytestmark = pytest.mark.anyio

HEX32 = r"[0-9a-f]{32}"


async def text_of(client: Client, tool: str, **args: Any) -> tuple[str, CallToolResult]:
    result = await client.call_tool(tool, args)
    block = result.content[0]
    assert isinstance(block, TextContent)
    assert len(block.text) <= TEXT_BUDGET, f"{tool}: {len(block.text)} characters of text"
    if result.structured_content is not None:
        size = len(json.dumps(result.structured_content, ensure_ascii=False))
        assert size <= STRUCTURED_BUDGET, f"{tool}: {size} characters of structured content"
    assert not re.search(r"\bNone\b", block.text), block.text
    return block.text, result


async def ok(client: Client, tool: str, **args: Any) -> str:
    text, result = await text_of(client, tool, **args)
    assert not result.is_error, text
    return text


async def error(client: Client, tool: str, **args: Any) -> str:
    text, result = await text_of(client, tool, **args)
    assert result.is_error, text
    return text


# --- the tool list ------------------------------------------------------------------------------------------


async def test_the_tool_list_fits_its_budgets_and_keeps_what_a_model_needs(client: Client) -> None:
    listing = await client.list_tools()
    wire = listing.model_dump_json(by_alias=True, exclude_none=True).encode()
    assert len(wire) <= TOOL_LIST_BUDGET, f"tools/list is {len(wire)} bytes"
    facing = sum(len(t.name) + len(t.description or "") + len(json.dumps(t.input_schema)) for t in listing.tools)
    assert facing <= MODEL_FACING_BUDGET, f"names, descriptions and input schemas: {facing} characters"
    generate = next(t for t in listing.tools if t.name == "generate_image")
    width = generate.input_schema["properties"]["width"]
    assert (width["type"], width["minimum"], width["maximum"]) == ("integer", 64, 4096) and width["description"]
    assert generate.input_schema["required"] == ["prompt"]
    assert '"title"' not in json.dumps(generate.input_schema)
    for tool in listing.tools:
        assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description") or "$ref" in prop or prop.get("items"), f"{tool.name}.{name}"


async def test_a_server_built_after_the_first_lists_the_same_tools_and_calls_its_own_app(
        client: Client, tmp_path: Path) -> None:
    """Tool descriptions are built once per process (`ToolBuilder`): a later server's tools/list is the same,
    byte for byte, and its tools act on its own App, not on the first server's."""
    other_app = App.create(Settings.from_env({"CONTEXT_SERVER_HOME": str(tmp_path / "other")}))
    try:
        async with Client(build_server(other_app)) as other:
            first, second = await client.list_tools(), await other.list_tools()
            assert second.model_dump_json(by_alias=True) == first.model_dump_json(by_alias=True)
            await call(other, "save_memory", content="only on the second server", kind="fact")
            assert [m["content"] for m in (await call(other, "get_all_memories"))["memories"]] == [
                "only on the second server"]
            assert (await call(client, "get_all_memories"))["memories"] == []
    finally:
        await other_app.aclose()


async def test_structured_content_still_validates_against_the_compacted_output_schemas(client: Client) -> None:
    """The SDK client validates structured content against the output schema; a running and a completed
    generation (nulls and values) both pass."""
    await call(client, "generate_image", prompt="a kite", width=64, height=64)
    await call(client, "generate_image", prompt="a kite", dry_run=True)
    await call(client, "list_recent_generations")
    await call(client, "get_profile")


# --- argument errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tool", "args", "expected"), [
    ("generate_image", {"prompt": ""}, "prompt must be 1..4000 characters; got 0 characters."),
    ("generate_image", {"prompt": "x", "width": 10}, "width must be 64..4096; got 10."),
    ("generate_image", {"prompt": "x" * 100_000}, "prompt must be 1..4000 characters; got 100000 characters."),
    ("generate_image", {"prompt": "x", "seed": -1}, "seed must be 0..4294967295; got -1."),
    ("generate_image", {"prompt": "x", "width": "wide"}, 'width must be a whole number (64..4096); got "wide".'),
    ("generate_image", {"prompt": "x", "aspect_ratio": "5:1"},
     'aspect_ratio must be one of 1:1, 16:9, 9:16, 3:2, 2:3, 4:3, 3:4; got "5:1".'),
    ("save_memory", {"content": "x", "kind": "styles"},
     'kind must be one of style, preference, fact, note; got "styles".'),
    ("get_all_memories", {"limit": 500}, "limit must be 1..200; got 500."),
    ("search_images", {"query": "x", "limit": 0}, "limit must be 1..50; got 0."),
    ("get_usage", {"period": "week"}, 'period must be one of day, month; got "week".'),
    ("delete_image", {}, "image_id is required (1..64 characters)."),
    ("save_memory", {"content": "x", "tags": ["a"] * 21}, "tags must have at most 20 items; got 21."),
    ("edit_image", {"image": "x", "instruction": "y", "strength": 2}, "strength must be 0..1; got 2."),
])
async def test_an_argument_error_is_one_sentence_naming_argument_rule_and_value(
        client: Client, tool: str, args: dict[str, Any], expected: str) -> None:
    text = await error(client, tool, **args)
    assert text == expected
    assert "pydantic" not in text and "Arguments" not in text and "http" not in text


async def test_a_domain_error_reads_without_the_sdk_prefix(client: Client) -> None:
    text = await error(client, "get_generation", job_id="nope")
    assert not text.startswith("Error executing tool") and "nope" in text


# --- generation texts ----------------------------------------------------------------------------------------


async def test_a_generation_text_labels_its_ids_and_says_what_was_added(client: Client) -> None:
    await ok(client, "save_memory", content="muted watercolour palette", kind="style", pinned=True)
    text, result = await text_of(client, "generate_image", prompt="a heron at dawn", width=800, height=600,
                                 negative_prompt="text")
    data = result.structured_content or {}
    assert f"image_id: {data['image_id']}" in text and f"job_id: {data['job_id']}" in text
    assert "800x600" in text and f"seed {data['seed']}" in text and data["path"] in text
    assert "Negative prompt: text" in text and "muted watercolour palette" in text
    assert [type(b) for b in result.content] == [TextContent, ImageContent, ResourceLink]


async def test_a_resolved_reference_shows_the_chosen_prompt_and_the_other_candidates(client: Client) -> None:
    for prompt in ("a spaceship over the ocean", "a red spaceship landing on mars", "a sports car in red"):
        await call(client, "generate_image", prompt=prompt, width=64, height=64)
    text, result = await text_of(client, "generate_image", prompt="the same at night",
                                 reference="my last spaceship image", width=64, height=64)
    reference = (result.structured_content or {})["applied"]["reference"]
    assert f"Reference: image_id: {reference['image_id']}" in text
    assert f'its prompt: "{reference["prompt"]}"' in text
    for alternative in reference["alternatives"]:
        assert str(alternative["image_id"]) in text
    if reference.get("reason"):
        assert reference["reason"] in text


async def test_a_dry_run_says_everything_that_would_be_sent(client: Client) -> None:
    made = await call(client, "generate_image", prompt="a lighthouse", width=64, height=64)
    await ok(client, "save_memory", content="ink and wash", kind="style", pinned=True)
    text = await ok(client, "generate_image", prompt="make it night", reference="the previous one", dry_run=True,
                    width=512, height=256, negative_prompt="people", seed=7, template="watercolour")
    data = await call(client, "generate_image", prompt="make it night", reference="the previous one",
                      dry_run=True, width=512, height=256, negative_prompt="people", seed=7, template="watercolour")
    assert text.startswith("Dry run: nothing was generated or stored")
    assert f"{data['provider']}/{data['model']}" in text and "512x256" in text and "seed 7" in text
    assert f"Final prompt: {data['final_prompt']}" in text and "Negative prompt: people" in text
    assert f"image_id: {made['image_id']}" in text and "ink and wash" in text and "Template: watercolour v1" in text


async def test_get_generation_of_a_deleted_image_says_it_was_deleted(client: Client) -> None:
    made = await call(client, "generate_image", prompt="a fox", width=64, height=64)
    await ok(client, "delete_image", image_id=made["image_id"])
    text, result = await text_of(client, "get_generation", job_id=made["job_id"])
    assert "deleted" in text and made["path"] not in text and "image://" not in text
    assert [type(b) for b in result.content] == [TextContent]
    data = result.structured_content or {}
    assert data["deleted"] is True and data["uri"] is None and data["path"] is None


async def test_recent_generations_label_image_and_job_ids_in_full_and_the_image_id_works(client: Client) -> None:
    made = await call(client, "generate_image", prompt="make it blue", width=64, height=64)
    text = await ok(client, "list_recent_generations")
    assert f"image_id: {made['image_id']} (job_id: {made['job_id']})" in text and "…" not in text
    image_id = re.search(rf"image_id: ({HEX32})", text)
    assert image_id is not None
    await ok(client, "edit_image", image=image_id.group(1), instruction="make it green")
    await ok(client, "delete_image", image_id=image_id.group(1))


async def test_list_providers_text_has_costs_and_capabilities(client: Client) -> None:
    text = await ok(client, "list_providers")
    assert "placeholder: configured" in text and "free" in text and "image-to-image" in text
    assert "openai: not configured (set OPENAI_API_KEY" in text and "$0.042 per image" in text
    assert "1024x1024" in text and "seed" in text


# --- sizes and relevance ----------------------------------------------------------------------------------


async def test_long_lists_stay_within_the_budgets_and_say_how_to_get_more(client: Client) -> None:
    """The issue's case: search_images limit 50 over 30 long-prompt dragon images was 117,400 characters."""
    filler = " a red dragon with bronze scales breathes fire, the dragon circles a castle." * 60
    for i in range(30):
        await call(client, "generate_image", prompt=f"dragon {i}:{filler}"[:3900], width=64, height=64)
    text, result = await text_of(client, "search_images", query="dragon", limit=50)
    hits = (result.structured_content or {})["images"]
    assert len(hits) >= 10 and all(h["score"] >= RELEVANCE_FLOOR for h in hits)
    assert "score" in text and "image://<image_id>/metadata has the full prompt" in text
    assert all(f"image_id: {h['image_id']}" in text for h in hits)
    text, result = await text_of(client, "list_recent_generations", limit=100)
    assert len((result.structured_content or {})["generations"]) == 30
    assert "get_generation(job_id)" in text


async def test_a_page_too_big_for_the_budget_is_cut_with_a_cursor_to_the_rest(client: Client, app: App) -> None:
    """200 memories are over the structured budget even with short contents; the page stops early and its
    cursor leads on to the rest, none lost or repeated. (Rows go in with SQL, as the service stores them:
    saving 200 distinct memories through the tool would test near-duplicate merging, not paging.)"""
    with app.store.write() as db:
        for i in range(200):
            stamp = f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}.000000Z"
            db.table("memories").insert({
                "id": f"{i:024x}", "user_id": "local", "session_id": None, "content": f"note {i}: " + "x" * 300,
                "kind": "note", "scope": "long_term", "tags": "[]", "pinned": 0, "use_count": 0,
                "last_used_at": None, "replaces": None, "created_at": stamp, "updated_at": stamp})
    text, result = await text_of(client, "get_all_memories", limit=200)
    page = result.structured_content or {}
    assert 0 < len(page["memories"]) < 200 and page["next_cursor"]
    assert f'cursor "{page["next_cursor"]}"' in text
    ids = [m["memory_id"] for m in page["memories"]]
    cursor = page["next_cursor"]
    while cursor:
        rest = await call(client, "get_all_memories", limit=200, cursor=cursor)
        ids += [m["memory_id"] for m in rest["memories"]]
        cursor = rest["next_cursor"]
    assert len(set(ids)) == len(ids) == 200


async def test_a_search_with_nothing_close_says_so_instead_of_listing_unrelated_items(client: Client) -> None:
    for prompt in ("a red dragon flying over a castle", "a lighthouse in a storm", "a bowl of fruit"):
        await call(client, "generate_image", prompt=prompt, width=64, height=64)
    text, result = await text_of(client, "search_images", query="dinosaur")
    assert (result.structured_content or {})["images"] == []
    assert text.startswith("No image is close to 'dinosaur'") and f"{RELEVANCE_FLOOR:.2f}" in text
    text = await ok(client, "search_images", query="dragon")
    assert "a red dragon flying over a castle" in text and "lighthouse" not in text


async def test_memory_search_shows_scores_and_drops_unrelated_memories(client: Client) -> None:
    await ok(client, "save_memory", content="I like muted watercolour palettes", kind="style")
    await ok(client, "save_memory", content="my dog is called Max", kind="fact")
    text, result = await text_of(client, "search_memories", query="watercolour")
    memories = (result.structured_content or {})["memories"]
    assert [m["content"] for m in memories] == ["I like muted watercolour palettes"]
    assert re.search(r"memory_id: [0-9a-f]+ · style · (applies to: [a-z ]+ · )?score 0\.\d\d · I like muted", text)
    assert "No memory is close" in await ok(client, "search_memories", query="tax return forms")


# --- results that say what happened ---------------------------------------------------------------------


async def test_replacing_a_pinned_style_keeps_the_pin_and_says_so(client: Client) -> None:
    old = await call(client, "save_memory", content="muted watercolour", kind="style", pinned=True)
    text, result = await text_of(client, "save_memory", content="bold ink outlines", kind="style",
                                 replaces=old["memory_id"])
    new_id = (result.structured_content or {})["memory_id"]
    assert f"Saved memory_id: {new_id}" in text and f"Replaced memory_id: {old['memory_id']}" in text
    assert "the pin was kept" in text
    listed = await call(client, "get_all_memories")
    assert [(m["memory_id"], m["pinned"]) for m in listed["memories"]] == [(new_id, True)]


async def test_update_profile_without_changes_says_nothing_changed(client: Client) -> None:
    assert (await ok(client, "update_profile")).startswith("Nothing changed: no field was given")
    assert "default_aspect_ratio: not set → 16:9" in await ok(client, "update_profile", default_aspect_ratio="16:9")
    assert (await ok(client, "update_profile", default_aspect_ratio="16:9")).startswith(
        "Nothing changed: the profile already had those values")


async def test_saving_an_unchanged_template_says_unchanged_and_adds_no_version(client: Client) -> None:
    await ok(client, "save_template", name="retro-neon", body="Retro neon poster of {subject}")
    text, result = await text_of(client, "save_template", name="retro-neon", body="Retro neon poster of {subject}")
    assert text.startswith("Unchanged: retro-neon v1")
    assert (result.structured_content or {})["versions"] == [1]


async def test_template_args_without_template_is_an_error(client: Client) -> None:
    text = await error(client, "generate_image", prompt="a cat", template_args={"subject": "a dog"})
    assert text.startswith("template_args needs template")


# --- templates the way a model writes them --------------------------------------------------------------


async def test_save_template_infers_required_arguments_from_the_body(client: Client) -> None:
    text = await ok(client, "save_template", name="retro-neon",
                    body="Retro neon poster of {subject}, glowing pink, {mood}")
    assert "inferred from the body" in text and "subject (required), mood (required)" in text
    with pytest.raises(Exception, match=r"missing required argument.*subject"):
        await client.get_prompt("retro-neon", {"mood": "calm"})
    refused = await error(client, "generate_image", prompt="a cat", template="retro-neon")
    assert "missing required argument(s) mood" in refused
    data = await call(client, "generate_image", prompt="a cat", template="retro-neon",
                      template_args={"mood": "calm"}, dry_run=True)
    assert data["final_prompt"].startswith("Retro neon poster of a cat, glowing pink, calm")
    assert (data["applied"]["template"], data["applied"]["template_version"]) == ("retro-neon", 1)


async def test_an_argument_declared_without_default_is_required(client: Client) -> None:
    await ok(client, "save_template", name="retro-neon", body="Retro neon poster of {subject}, glowing pink",
             arguments=[{"name": "subject"}])
    with pytest.raises(Exception, match=r"missing required argument.*subject"):
        await client.get_prompt("retro-neon", {})
    await ok(client, "save_template", name="soft", body="{subject} in {light}",
             arguments=[{"name": "subject"}, {"name": "light", "default": "soft light"}])
    rendered = await client.get_prompt("soft", {"subject": "a vase"})
    assert "a vase in soft light" in rendered.messages[0].content.text  # type: ignore[union-attr]


# --- the rate limit ---------------------------------------------------------------------------------------


@pytest.fixture
async def paid_app(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[App, OpenAIFake]]:
    fake = OpenAIFake()
    settings = Settings.from_env(OpenAIFake.env("http://fake") | {
        "CONTEXT_SERVER_HOME": str(make_settings().home), "CONTEXT_SERVER_RATE_LIMIT_PER_MINUTE": "2"})
    http = fake.client()
    application = App.create(settings, http_client=http,
                             providers=[PlaceholderProvider(), OpenAIProvider(settings.provider_env, http)])
    try:
        yield application, fake
    finally:
        await application.aclose()


async def test_the_rate_limit_throttles_paid_providers_but_not_placeholder(
        paid_app: tuple[App, OpenAIFake]) -> None:
    app, fake = paid_app
    async with Client(build_server(app)) as client:
        for _ in range(5):
            await ok(client, "generate_image", prompt="a fox", width=64, height=64)
        for _ in range(2):
            await ok(client, "generate_image", prompt="a fox", provider="openai", width=1024, height=1024)
        limited = await error(client, "generate_image", prompt="a fox", provider="openai", width=1024, height=1024)
        assert limited.startswith("rate limit: at most 2 generations a minute")
        await ok(client, "generate_image", prompt="a fox", width=64, height=64)
    assert len(fake.requests) == 2


# --- HTTP headers -----------------------------------------------------------------------------------------


async def test_header_values_reach_the_server_without_surrounding_whitespace() -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["headers"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = HostOriginGuard(inner, transport_security("127.0.0.1", [], []))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://127.0.0.1:8000") as http:
        response = await http.post("/mcp", headers={"Mcp-Name": "  generate_image\t"})
    assert response.status_code == 204
    assert (b"mcp-name", b"generate_image") in seen[0]
