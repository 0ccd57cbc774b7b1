"""The gallery over real HTTP (no browser): signing in with a token, per-user isolation, every write
through the domain with its validation and audit, and the local `context-server gallery` app.

The browser tests (tests/test_gallery_browser.py) click through the same pages in Chromium.
"""

from __future__ import annotations

import re

import httpx
import pytest

from context_server.app import App
from context_server.server.gallery import COOKIE, local_gallery_app

from .conftest import call
from .http_support import TLS, RunningServer

pytestmark = pytest.mark.anyio

CANARY = "CANARYgq4"


def gallery(server: RunningServer, token: str | None = None) -> httpx.AsyncClient:
    base = server.url.removesuffix("/mcp")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=base, headers=headers, timeout=30.0, verify=TLS)


async def seed(server: RunningServer, token: str, mark: str = CANARY) -> dict[str, str]:
    """A user's image, style memory and template, each carrying `mark`."""
    template = f"{mark.lower()}-poster"
    async with server.client(token) as client:
        memory = await call(client, "save_memory", content=f"{mark} lighthouses get stormy indigo skies",
                            kind="style")
        image = await call(client, "generate_image", prompt=f"a {mark} lighthouse at dusk")
        await call(client, "save_template", name=template, description=f"{mark} poster",
                   body=f"{mark} poster of {{subject}}",
                   arguments=[{"name": "subject", "description": "what", "required": True}])
    return {"image_id": image["image_id"], "memory_id": memory["memory_id"], "template": template}


async def test_a_token_link_signs_in_once_and_keeps_the_token_out_of_the_address(
        two_users: tuple[RunningServer, str, str]) -> None:
    server, alice, _ = two_users
    async with gallery(server) as browser:
        refused = await browser.get("/gallery/")
        assert refused.status_code == 401 and 'name="token"' in refused.text  # the sign-in form
        wrong = await browser.get("/gallery/?token=not-a-token")
        assert wrong.status_code == 401 and "not valid" in wrong.text
        link = await browser.get(f"/gallery/memories?token={alice}&kind=style")
        assert link.status_code == 303
        assert link.headers["location"] == "/gallery/memories?kind=style"
        cookie = link.headers["set-cookie"]
        assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Path=/gallery" in cookie
        page = await browser.get("/gallery/memories?kind=style")
        assert page.status_code == 200 and "Signed in as <strong>alice</strong>" in page.text
        out = await browser.post("/gallery/logout")
        assert out.status_code == 303
        assert (await browser.get("/gallery/")).status_code == 401


async def test_the_sign_in_form_takes_a_token(two_users: tuple[RunningServer, str, str]) -> None:
    server, alice, _ = two_users
    async with gallery(server) as browser:
        bad = await browser.post("/gallery/login", data={"token": "nope", "next": "/gallery/profile"})
        assert bad.status_code == 401 and "not valid" in bad.text
        good = await browser.post("/gallery/login", data={"token": alice, "next": "https://evil.example/"})
        assert good.status_code == 303 and good.headers["location"] == "/gallery/"  # never off the gallery
        assert (await browser.get("/gallery/profile")).status_code == 200


async def test_a_revoked_token_stops_working_at_once(two_users: tuple[RunningServer, str, str], app: App) -> None:
    server, alice, _ = two_users
    async with gallery(server) as browser:
        await browser.get(f"/gallery/?token={alice}")
        assert (await browser.get("/gallery/")).status_code == 200
        app.users.revoke("alice")
        assert (await browser.get("/gallery/")).status_code == 401


async def test_bob_sees_nothing_of_alices_on_any_page(two_users: tuple[RunningServer, str, str]) -> None:
    server, alice, bob = two_users
    ids = await seed(server, alice)
    await seed(server, bob, "BOBSOWN")  # Bob has data of his own too: his pages are not empty, just his
    pages = ["/gallery/", "/gallery/?q=lighthouse+at+dusk", "/gallery/memories", "/gallery/memories?q=stormy+indigo+skies",
             "/gallery/memories?kind=style", "/gallery/memories/export", "/gallery/templates", "/gallery/profile"]
    foreign = [f"/gallery/images/{ids['image_id']}", f"/gallery/images/{ids['image_id']}/file",
               f"/gallery/images/{ids['image_id']}/file?width=64", f"/gallery/templates/{ids['template']}",
               f"/gallery/templates/{ids['template']}?version=1"]
    async with gallery(server, alice) as as_alice, gallery(server, bob) as as_bob:
        # As Alice every foreign page finds her data: the probes are meaningful.
        for path in foreign:
            assert (await as_alice.get(path)).status_code == 200, path
        assert ids["memory_id"] in (await as_alice.get("/gallery/memories")).text
        for path in pages:
            seen = await as_bob.get(path)
            assert seen.status_code == 200, path
            assert CANARY not in seen.text and ids["image_id"] not in seen.text, path
            assert ids["memory_id"] not in seen.text, path
        bob_images = await as_bob.get("/gallery/")
        assert len(re.findall(r'href="/gallery/images/[0-9a-f]+"', bob_images.text)) == 1
        for path in foreign:
            seen = await as_bob.get(path)
            missing = await as_bob.get(path.replace(ids["image_id"], "0" * 32).replace(ids["template"], "nosuch-x"))
            assert seen.status_code == missing.status_code == 404, path
            assert CANARY not in seen.text
        for action, data in (("pin", {"pinned": "1"}), ("edit", {"content": "mine now", "kind": "style"}),
                             ("delete", {})):
            hit = await as_bob.post(f"/gallery/memories/{ids['memory_id']}/{action}", data=data)
            assert hit.status_code == 404, action
        edit = await as_bob.post(f"/gallery/templates/{ids['template']}", data={"text": "---\nname: x\n---\nx"})
        assert edit.status_code == 404
        restore = await as_bob.post(f"/gallery/templates/{ids['template']}/restore", data={"version": "1"})
        assert restore.status_code == 404
        # Alice's memory is untouched by Bob's attempts.
        after = await as_alice.get("/gallery/memories")
        assert f"{CANARY} lighthouses get stormy indigo skies" in after.text


async def test_pin_edit_and_forget_go_through_the_domain_and_the_audit(
        two_users: tuple[RunningServer, str, str], app: App) -> None:
    server, alice, _ = two_users
    ids = await seed(server, alice)
    memory_id = ids["memory_id"]
    async with gallery(server, alice) as browser:
        pinned = await browser.post(f"/gallery/memories/{memory_id}/pin",
                                    data={"pinned": "1", "next": f"/gallery/images/{ids['image_id']}"})
        assert pinned.status_code == 303
        assert pinned.headers["location"] == f"/gallery/images/{ids['image_id']}?msg=pinned"
        assert app.memories.get("alice", memory_id).pinned
        too_long = await browser.post(f"/gallery/memories/{memory_id}/edit",
                                      data={"content": "x" * 2001, "kind": "style", "tags": ""})
        assert too_long.status_code == 400 and 'role="alert"' in too_long.text
        assert "2000" in too_long.text
        edited = await browser.post(f"/gallery/memories/{memory_id}/edit",
                                    data={"content": "skies in stormy indigo", "kind": "style", "tags": "sky, mood"})
        assert edited.status_code == 303
        memory = app.memories.get("alice", memory_id)
        assert memory.content == "skies in stormy indigo" and memory.tags == ["sky", "mood"]
        found = await browser.get("/gallery/memories?q=indigo+sky")  # the index saw the edit (outbox drained)
        assert memory_id in found.text
        export = await browser.get("/gallery/memories/export")
        assert export.headers["content-type"].startswith("application/x-ndjson")
        assert '"content": "skies in stormy indigo"' in export.text
        forgotten = await browser.post(f"/gallery/memories/{memory_id}/delete", data={})
        assert forgotten.status_code == 303
        assert memory_id not in (await browser.get("/gallery/memories")).text
    actions = [row["tool"] for row in app.audit.recent("alice") if row["tool"].startswith("gallery/")]
    assert actions == ["gallery/delete_memory", "gallery/update_memory", "gallery/update_memory",
                       "gallery/pin_memory"]
    outcomes = [row["outcome"] for row in app.audit.recent("alice") if row["tool"] == "gallery/update_memory"]
    assert outcomes == ["ok", "error"]


async def test_a_template_edit_with_an_error_is_shown_inline_and_stores_nothing(
        two_users: tuple[RunningServer, str, str], app: App) -> None:
    server, alice, _ = two_users
    ids = await seed(server, alice)
    name = ids["template"]
    async with gallery(server, alice) as browser:
        page = await browser.get(f"/gallery/templates/{name}")
        text = re.search(r'<textarea id="template-text"[^>]*>(.*?)</textarea>', page.text, re.S)
        assert text is not None
        original = text.group(1).replace("&#x27;", "'").replace("&quot;", '"').replace("&lt;", "<") \
            .replace("&gt;", ">").replace("&amp;", "&")
        broken = original.replace("poster of {subject}", "poster of {subject} in {colour")
        refused = await browser.post(f"/gallery/templates/{name}", data={"text": broken})
        assert refused.status_code == 400
        assert 'role="alert"' in refused.text and "aria-invalid" in refused.text
        assert "in {colour" in refused.text  # what the user typed is kept in the form
        assert app.templates.get("alice", name).version == 1
        saved = await browser.post(f"/gallery/templates/{name}",
                                   data={"text": original.replace("poster of", "bold poster of")})
        assert saved.status_code == 303 and saved.headers["location"].endswith("msg=saved")
        assert app.templates.get("alice", name).version == 2
        old = await browser.get(f"/gallery/templates/{name}?version=1")
        assert "Restore version 1" in old.text and 'class="del"' in old.text and 'class="add"' in old.text
        restored = await browser.post(f"/gallery/templates/{name}/restore", data={"version": "1"})
        assert restored.status_code == 303
        latest = app.templates.get("alice", name)
        assert latest.version == 3 and latest.body == app.templates.get("alice", name, 1).body
    assert [r["tool"] for r in app.audit.recent("alice")][:3] == [
        "gallery/restore_template", "gallery/save_template", "gallery/save_template"]


async def test_the_image_page_shows_lineage_receipt_and_metadata(
        two_users: tuple[RunningServer, str, str]) -> None:
    server, alice, _ = two_users
    ids = await seed(server, alice)
    async with server.client(alice) as client:
        edit = await call(client, "edit_image", image=ids["image_id"], instruction="make the sky green")
    async with gallery(server, alice) as browser:
        parent = await browser.get(f"/gallery/images/{ids['image_id']}")
        assert "Made from this" in parent.text and edit["image_id"] in parent.text
        assert f"{CANARY} lighthouses get stormy indigo skies" in parent.text  # the applied style, in the receipt
        assert ids["memory_id"] in parent.text and "Forget" in parent.text
        child = await browser.get(f"/gallery/images/{edit['image_id']}")
        assert "Made from" in child.text and ids["image_id"] in child.text
        assert edit["final_prompt"].split()[0] in child.text
        picture = await browser.get(f"/gallery/images/{ids['image_id']}/file?width=64&format=webp")
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/webp"
        bad = await browser.get(f"/gallery/images/{ids['image_id']}/file?width=lots")
        assert bad.status_code == 400 and "whole number" in bad.text


async def test_profile_page_charts_usage_and_saves_through_validation(
        two_users: tuple[RunningServer, str, str], app: App) -> None:
    server, alice, _ = two_users
    await seed(server, alice)
    async with gallery(server, alice) as browser:
        page = await browser.get("/gallery/profile")
        assert '<svg role="img" aria-label="Generations per day: 1 in 14 days' in page.text
        wrong = await browser.post("/gallery/profile", data={"default_aspect_ratio": "5:1"})
        assert wrong.status_code == 400 and "default_aspect_ratio must be one of" in wrong.text
        ok = await browser.post("/gallery/profile", data={"default_aspect_ratio": "16:9", "daily_budget_usd": "2.5"})
        assert ok.status_code == 303
    assert app.profiles.get("alice")["default_aspect_ratio"] == "16:9"
    assert app.profiles.get("alice")["daily_budget_usd"] == 2.5


async def test_the_local_gallery_opens_only_with_its_link(app: App) -> None:
    asgi = local_gallery_app(app, token="s3cret-token")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://127.0.0.1:8765") as browser:
        assert (await browser.get("/gallery/")).status_code == 401
        assert (await browser.get("/gallery/?token=wrong")).status_code == 401
        link = await browser.get("/gallery/?token=s3cret-token")
        assert link.status_code == 303
        page = await browser.get("/gallery/")
        assert page.status_code == 200 and f"Signed in as <strong>{app.settings.user}</strong>" in page.text
        home = await browser.get("/")
        assert home.status_code == 307 and home.headers["location"] == "/gallery/"
        rebinding = await browser.get("/gallery/", headers={"Host": "evil.example:8765"})
        assert rebinding.status_code == 421
        cross_site = await browser.post("/gallery/logout", headers={"Origin": "https://evil.example"})
        assert cross_site.status_code == 403
