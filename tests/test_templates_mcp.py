"""Templates as MCP tools, resources, prompts and completions, per user."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from mcp import Client
from mcp.types import PromptReference, ResourceTemplateReference

from context_server.app import App
from context_server.server import build_server
from context_server.settings import Settings

from .conftest import call, call_error

pytestmark = pytest.mark.anyio

BODY = "A {subject} drawn in thick neon outlines on black"
ARGS = [{"name": "subject", "description": "What to draw", "required": True}]


async def test_every_builtin_is_a_prompt_with_its_arguments(client: Client) -> None:
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert len(prompts) >= 8
    assert {"watercolour", "photo", "pixel-art", "vector-logo"} <= set(prompts)
    subject = next(a for a in prompts["watercolour"].arguments or [] if a.name == "subject")
    assert subject.required is True and subject.description


async def test_get_prompt_renders_the_template_for_generate_image(client: Client) -> None:
    result = await client.get_prompt("watercolour", {"subject": "a heron at dawn"})
    text = result.messages[0].content.text  # type: ignore[union-attr]
    assert "a heron at dawn" in text and "generate_image" in text
    with pytest.raises(Exception, match="subject"):
        await client.get_prompt("watercolour", {})


async def test_generate_with_a_template_fills_its_subject_and_reports_it(client: Client) -> None:
    data = await call(client, "generate_image", prompt="a heron at dawn", template="watercolour", dry_run=True)
    assert data["final_prompt"].startswith("A loose watercolour painting of a heron at dawn")
    assert (data["applied"]["template"], data["applied"]["template_version"]) == ("watercolour", 1)
    assert "unknown template" in await call_error(client, "generate_image", prompt="x", template="nope")


async def test_saving_a_template_adds_a_prompt_and_keeps_versions(client: Client) -> None:
    before = {p.name for p in (await client.list_prompts()).prompts}
    v1 = await call(client, "save_template", name="neon", body=BODY, arguments=ARGS)
    v2 = await call(client, "save_template", name="neon", body=BODY + ", glowing", arguments=ARGS)
    assert (v1["version"], v2["version"]) == (1, 2)
    after = {p.name for p in (await client.list_prompts()).prompts}
    assert after - before == {"neon"}
    old = await call(client, "get_template", name="neon", version=1)
    assert old["body"] == BODY and old["versions"] == [1, 2]
    data = await call(client, "generate_image", prompt="a cat", template="neon", dry_run=True)
    assert data["final_prompt"] == "A a cat drawn in thick neon outlines on black, glowing"


async def test_a_user_template_overrides_a_builtin_and_deleting_it_brings_it_back(client: Client) -> None:
    builtin = await call(client, "get_template", name="poster")
    await call(client, "save_template", name="poster", body=BODY, arguments=ARGS, description="mine")
    assert (await call(client, "get_template", name="poster"))["source"] == "user"
    deleted = await call(client, "delete_template", name="poster")
    assert deleted["restored_builtin"]["body"] == builtin["body"]
    assert (await call(client, "get_template", name="poster"))["source"] == "builtin"
    assert "built-in" in await call_error(client, "delete_template", name="poster")


@pytest.mark.parametrize("name", ["Bad Name", "UPPER", "a" * 65, "dots.not.allowed", "under_score"])
async def test_bad_template_names_are_refused_with_the_allowed_form(client: Client, name: str) -> None:
    text = await call_error(client, "save_template", name=name, body="plain")
    assert "a-z" in text or "at most 64" in text or "1..64" in text or "characters" in text


async def test_bodies_that_could_execute_are_refused(client: Client) -> None:
    for body in ("{subject.__class__}", "{0}", "{subject[0]}", "{subject!r}"):
        text = await call_error(client, "save_template", name="evil", body=body, arguments=ARGS)
        assert "placeholder" in text.lower() or "{" in text


async def test_template_resources_and_prompt_guide(client: Client) -> None:
    listing = await client.read_resource("template://list")
    assert "watercolour" in listing.contents[0].text  # type: ignore[union-attr]
    one = await client.read_resource("template://watercolour")
    assert one.contents[0].text.startswith("---")  # type: ignore[union-attr]
    guide = (await client.read_resource("info://prompt-guide")).contents[0].text  # type: ignore[union-attr]
    assert "negative" in guide.lower() and "dall-e-3" in guide.lower()
    with pytest.raises(Exception, match="not found"):
        await client.read_resource("template://does-not-exist")


async def test_completions_offer_template_names_and_argument_values(client: Client, app: App) -> None:
    names = await client.complete(ResourceTemplateReference(uri="template://{name}"), {"name": "name", "value": "wat"})
    assert names.completion.values == ["watercolour"]
    ratios = await client.complete(PromptReference(name="cinematic-still"), {"name": "aspect_ratio", "value": "16"})
    palette = await client.complete(PromptReference(name="watercolour"), {"name": "palette", "value": ""})
    assert palette.completion.values
    del ratios  # only some templates have an aspect_ratio argument; the value list is checked in test_templates.py


async def test_prompt_list_changed_is_advertised_and_sent_on_edit(make_settings: Callable[..., Settings]) -> None:
    app = App.create(make_settings())
    seen: list[str] = []

    async def handler(message: object) -> None:
        method = getattr(getattr(message, "root", message), "method", None)
        if method:
            seen.append(method)

    async with Client(build_server(app), mode="legacy", message_handler=handler) as client:
        assert client.server_capabilities.prompts is not None
        assert client.server_capabilities.prompts.list_changed is True
        await call(client, "save_template", name="neon", body=BODY, arguments=ARGS)
        await call(client, "list_templates")  # a round trip, so the notification has arrived
    await app.aclose()
    assert "notifications/prompts/list_changed" in seen


async def test_another_users_templates_are_invisible(make_settings: Callable[..., Settings]) -> None:
    app_a = App.create(make_settings(CONTEXT_SERVER_USER="a"))
    app_b = App.create(make_settings(CONTEXT_SERVER_USER="b"))
    async with Client(build_server(app_a)) as a, Client(build_server(app_b)) as b:
        await call(a, "save_template", name="secret-canary", body=BODY, arguments=ARGS)
        assert "secret-canary" not in repr(await call(b, "list_templates"))
        assert "secret-canary" not in {p.name for p in (await b.list_prompts()).prompts}
        assert "unknown template" in await call_error(b, "get_template", name="secret-canary")
        with pytest.raises(Exception, match="not found"):
            await b.read_resource("template://secret-canary")
    await app_a.aclose()
    await app_b.aclose()
