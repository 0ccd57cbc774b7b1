"""The gallery and the MCP App viewer in a real Chromium, against the real server (SQLite, Chroma, embedder).

One browser for the module; each test gets a fresh context (its own cookies). Screenshots of every
page land in $CONTEXT_SERVER_ARTIFACTS (default .ci/artifacts/); axe-core checks every page for
serious and critical violations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from context_server.adapters.embedder import Embedder
from context_server.app import App
from context_server.server.viewer import VIEWER_URI
from context_server.settings import Settings

from .browser_support import ThreadedServer, axe_violations, launch, needs_browser, shot

pytestmark = [needs_browser, pytest.mark.slow]

LIGHTHOUSE = "a coastal landscape with a lighthouse at dusk"
FOX = "a red fox in fresh snow"
WATERCOLOUR = "landscapes should be muted watercolour"
LOGOS = "logos should be flat vector shapes in two colours"
TEMPLATE = "harbour-poster"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("gallery") / "home"
    app = App.create(Settings.from_env({"CONTEXT_SERVER_HOME": str(home)}), embedder=embedder)
    _, alice = app.users.add("alice")
    _, bob = app.users.add("bob")
    assert app.indexer.take_index()  # search by meaning from the first call, as after the server's warm-up
    with ThreadedServer(app) as server:
        watercolour = server.call(alice, "save_memory", content=WATERCOLOUR, kind="style")
        logos = server.call(alice, "save_memory", content=LOGOS, kind="style")
        lighthouse = server.call(alice, "generate_image", prompt=LIGHTHOUSE)
        fox = server.call(alice, "generate_image", prompt=FOX)
        server.call(alice, "save_template", name=TEMPLATE, description="A poster of a harbour scene",
                    body="travel poster of {place} harbour, bold flat colours",
                    arguments=[{"name": "place", "description": "Which harbour", "required": True}])
        ramen = server.call(bob, "generate_image", prompt="a bowl of ramen with steam")
        yield {"server": server, "app": app, "alice": alice, "bob": bob, "lighthouse": lighthouse, "fox": fox,
               "ramen": ramen, "watercolour": watercolour["memory_id"], "logos": logos["memory_id"]}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    yield tab
    context.close()


def sign_in(page: Any, site: dict[str, Any], who: str = "alice", path: str = "/gallery/") -> None:
    page.goto(f"{site['server'].base}{path}?token={site[who]}")
    assert "token=" not in page.url  # the token went into the cookie, not the history


def accessible(page: Any, frame: Any | None = None) -> None:
    violations = axe_violations(page, frame)
    assert not violations, json.dumps(violations, indent=2)


def assert_image_loads(page: Any, selector: str) -> None:
    """The first image matching `selector` is decoded, as a user would see it. Polled (up to 15 s): the grid's
    images load lazily, and on a busy CI machine after the page's load event; a broken image never passes."""
    page.wait_for_function(
        "sel => { const img = document.querySelector(sel); return !!img && img.complete && img.naturalWidth > 0 }",
        arg=selector, timeout=15000)


def test_browse_and_search_images(page: Any, site: dict[str, Any]) -> None:
    sign_in(page, site)
    grid = page.locator("#images")
    assert LIGHTHOUSE in grid.inner_text() and FOX in grid.inner_text()
    assert_image_loads(page, "#images img")
    shot(page, "gallery-images")
    accessible(page)
    page.get_by_label("Search by meaning").fill("a beacon by the sea")
    page.get_by_role("button", name="Search").click()
    first = page.locator("#images li").first
    assert LIGHTHOUSE in first.inner_text()
    assert "score" in first.inner_text()
    shot(page, "gallery-search")


def test_open_an_image_and_its_receipt(page: Any, site: dict[str, Any]) -> None:
    sign_in(page, site)
    page.get_by_role("link", name=LIGHTHOUSE).click()
    assert page.locator("h1").inner_text() == f"Image {site['lighthouse']['image_id']}"
    assert page.locator("#final-prompt").inner_text() == site["lighthouse"]["final_prompt"]
    receipt = page.locator("#receipt")
    assert WATERCOLOUR in receipt.inner_text() and site["watercolour"] in receipt.inner_text()
    assert_image_loads(page, "#image")
    shot(page, "gallery-image")
    accessible(page)


def test_pin_and_forget_a_style_change_the_next_generation(page: Any, site: dict[str, Any]) -> None:
    server, alice, logos = site["server"], site["alice"], site["logos"]
    before = server.call(alice, "generate_image", prompt=LIGHTHOUSE, dry_run=True)
    assert logos not in [s["memory_id"] for s in before["applied"]["styles"]]  # about logos, not lighthouses

    sign_in(page, site, path="/gallery/memories")
    shot(page, "gallery-memories")
    accessible(page)
    page.get_by_role("button", name=f"Pin memory {logos}").click()
    assert "Pinned" in page.get_by_role("status").inner_text()
    pinned = server.call(alice, "generate_image", prompt=LIGHTHOUSE)
    assert logos in [s["memory_id"] for s in pinned["applied"]["styles"]]
    assert "flat vector shapes" in pinned["final_prompt"]

    page.goto(f"{server.base}/gallery/images/{pinned['image_id']}")
    page.get_by_role("button", name=f"Forget memory {logos}").first.click()
    assert "Forgotten" in page.get_by_role("status").inner_text()
    after = server.call(alice, "generate_image", prompt=LIGHTHOUSE)
    assert logos not in [s["memory_id"] for s in after["applied"]["styles"]]
    assert "flat vector shapes" not in after["final_prompt"]


def test_edit_a_template_get_a_validation_error_and_restore_a_version(page: Any, site: dict[str, Any]) -> None:
    sign_in(page, site, path="/gallery/templates")
    shot(page, "gallery-templates")
    accessible(page)
    page.get_by_role("link", name=TEMPLATE).click()
    editor = page.get_by_label("Template file")
    original = editor.input_value()
    editor.fill(original.replace("bold flat colours", "bold flat colours, {unclosed"))
    page.get_by_role("button", name="Save as a new version").click()
    alert = page.get_by_role("alert")
    assert alert.is_visible() and "{" in alert.inner_text()
    assert page.get_by_label("Template file").get_attribute("aria-invalid") == "true"
    shot(page, "gallery-template-error")
    accessible(page)
    assert site["app"].templates.get("alice", TEMPLATE).version == 1

    page.get_by_label("Template file").fill(original.replace("bold flat colours", "soft pastel colours"))
    page.get_by_role("button", name="Save as a new version").click()
    assert "new version" in page.get_by_role("status").inner_text()
    page.locator("#versions").get_by_role("link", name="v1").click()
    assert page.locator("pre.diff .del").first.inner_text().startswith("-")
    shot(page, "gallery-template-history")
    accessible(page)
    page.get_by_role("button", name="Restore version 1").click()
    assert "restored" in page.get_by_role("status").inner_text()
    latest = site["app"].templates.get("alice", TEMPLATE)
    assert latest.version == 3 and "bold flat colours" in latest.body
    assert "v3 (latest)" in page.locator("#versions").inner_text()


def test_profile_and_usage(page: Any, site: dict[str, Any]) -> None:
    sign_in(page, site, path="/gallery/profile")
    chart = page.get_by_role("img", name=re.compile("Generations per day"))
    assert chart.is_visible()
    assert page.locator("svg rect.bar").count() == 14
    shot(page, "gallery-profile")
    accessible(page)


def test_bob_never_sees_alices_images_in_the_browser(page: Any, site: dict[str, Any]) -> None:
    sign_in(page, site, who="bob")
    assert page.locator("#images li").count() == 1
    assert "ramen" in page.locator("#images").inner_text()
    response = page.goto(f"{site['server'].base}/gallery/images/{site['lighthouse']['image_id']}")
    assert response.status == 404 and LIGHTHOUSE not in page.content()
    response = page.goto(f"{site['server'].base}/gallery/images/{site['lighthouse']['image_id']}/file")
    assert response.status == 404
    page.goto(f"{site['server'].base}/gallery/memories")
    assert WATERCOLOUR not in page.content()
    page.goto(f"{site['server'].base}/gallery/templates/{TEMPLATE}")
    assert "harbour" not in page.locator("main").inner_text()


def test_sign_in_page_is_accessible(page: Any, site: dict[str, Any]) -> None:
    page.goto(f"{site['server'].base}/gallery/")
    assert page.get_by_label("Token").is_visible()
    shot(page, "gallery-sign-in")
    accessible(page)
    page.get_by_label("Token").fill(site["alice"])
    page.get_by_role("button", name="Sign in").click()
    assert page.locator("#images li").count() >= 2


# --- the MCP App, in a host page that speaks the Apps bridge -------------------------------------------

HOST = Path(__file__).parent / "fakes" / "apps_host.html"


def viewer_resource(site: dict[str, Any]) -> dict[str, Any]:
    async def read(client: Any) -> dict[str, Any]:
        result = await client.read_resource(VIEWER_URI)
        return dict(result.model_dump(mode="json", by_alias=True)["contents"][0])

    return site["server"].mcp(site["alice"], read)


def csp_for(meta: dict[str, Any]) -> str:
    """The policy the spec tells a host to build from `_meta.ui.csp` (here every list is empty)."""
    csp = meta.get("ui", {}).get("csp", {})
    res = " ".join(csp.get("resourceDomains", []))
    return (f"default-src 'none'; script-src 'unsafe-inline' {res}; style-src 'unsafe-inline' {res}; "
            f"connect-src {' '.join(csp.get('connectDomains', [])) or chr(39) + 'none' + chr(39)}; "
            f"img-src data: {res}; frame-src 'none'; object-src 'none'; base-uri 'none'")


def open_in_host(page: Any, site: dict[str, Any], result: dict[str, Any], theme: str = "light") -> Any:
    resource = viewer_resource(site)
    assert resource["mimeType"] == "text/html;profile=mcp-app"
    html = resource["text"].replace("<head>", f'<head><meta http-equiv="Content-Security-Policy" '
                                              f'content="{csp_for(resource.get("_meta") or {})}">', 1)
    server, token = site["server"], site["alice"]

    def forward(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "tools/call":
            return server.call_raw(token, params["name"], params.get("arguments") or {})

        async def read(client: Any) -> dict[str, Any]:
            got = await client.read_resource(params["uri"])
            return dict(got.model_dump(mode="json", by_alias=True, exclude_none=True))

        return server.mcp(token, read)

    page.expose_function("forwardToServer", forward)
    page.goto(HOST.as_uri())
    page.evaluate("([html, result, theme]) => window.startHost(html, result, theme)", [html, result, theme])
    return page.frame_locator("#view")


def test_the_mcp_app_renders_a_real_result_and_calls_tools_through_the_bridge(
        page: Any, site: dict[str, Any]) -> None:
    server, alice = site["server"], site["alice"]
    result = server.call_raw(alice, "generate_image", {"prompt": LIGHTHOUSE})
    sc = result["structuredContent"]
    view = open_in_host(page, site, result)
    assert view.locator("#final").inner_text() == sc["final_prompt"]
    assert WATERCOLOUR in view.locator("#receipt").inner_text()
    assert view.locator("#image").evaluate("img => img.src.startsWith('data:image/jpeg') && img.naturalWidth > 0")
    assert sc["image_id"] in view.locator("#status").inner_text()
    shot(page, "mcp-app-light")
    accessible(page, page.frames[1])

    page.evaluate("() => window.setTheme('dark')")
    assert view.locator("html").get_attribute("data-theme") == "dark"
    shot(page, "mcp-app-dark")
    accessible(page, page.frames[1])

    view.get_by_label("New prompt").fill("the same lighthouse in a storm")
    view.get_by_role("button", name="Use as reference").click()
    page.wait_for_function("() => window.calls.length === 1")
    call = page.evaluate("() => window.calls[0]")
    assert call["method"] == "tools/call"
    assert call["params"] == {"name": "generate_image",
                              "arguments": {"prompt": "the same lighthouse in a storm", "reference": sc["image_id"]}}
    view.locator("#final").filter(has_text="storm").wait_for()
    receipt = view.locator("#receipt").inner_text()
    assert f"Reference: {sc['image_id']}" in receipt
    assert sc["image_id"] not in view.locator("#status").inner_text()  # a new image is shown

    view.get_by_role("button", name="Open the parent").click()
    page.wait_for_function("() => window.calls.some(c => c.params.name === 'get_generation')")
    view.locator("#final").filter(has_text=sc["final_prompt"]).wait_for()
    assert sc["image_id"] in view.locator("#status").inner_text()


def test_the_mcp_app_pins_an_applied_style(page: Any, site: dict[str, Any]) -> None:
    server, alice = site["server"], site["alice"]
    result = server.call_raw(alice, "generate_image", {"prompt": "a mountain landscape with a lake at dawn"})
    styles = result["structuredContent"]["applied"]["styles"]
    assert styles, "the watercolour landscape style applies to a landscape"
    view = open_in_host(page, site, result, theme="dark")
    view.get_by_role("button", name="Pin").first.click()
    page.wait_for_function("() => window.calls.length === 1")
    call = page.evaluate("() => window.calls[0]")
    assert call["params"] == {"name": "update_memory", "arguments": {"memory_id": styles[0]["memory_id"], "pinned": True}}
    view.get_by_text("Pinned: it now applies").wait_for()
    assert site["app"].memories.get("alice", styles[0]["memory_id"]).pinned
    server.call(alice, "update_memory", memory_id=styles[0]["memory_id"], pinned=False)
