"""Memory as a user would recognise it: what a remembered style does to later prompts, which earlier image
"my last spaceship image" means (also after a restart), merged repeats, two users on one data directory,
and a crash with index work still queued. Assertions are on what the user sees: `applied` and
`final_prompt`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from context_server.adapters.embedder import Embedder
from context_server.adapters.store import Store
from context_server.app import App
from context_server.server import build_server
from context_server.settings import Settings

from .conftest import WORKTREE, call, call_error, served, vector_index

pytestmark = pytest.mark.anyio

SMALL = {"width": 64, "height": 64}


def style_ids(result: dict[str, Any]) -> list[str]:
    return [s["memory_id"] for s in result["applied"]["styles"]]


async def test_a_pinned_style_is_applied_to_later_unrelated_prompts(client: Client) -> None:
    pinned = await call(client, "save_memory", content="in the style of a ukiyo-e woodblock print",
                        kind="style", pinned=True)
    for prompt in ("a bowl of fruit on a table", "a spaceship over the ocean", "a portrait of my grandmother"):
        made = await call(client, "generate_image", prompt=prompt, **SMALL)
        [style] = made["applied"]["styles"]
        assert (style["memory_id"], style["content"], style["score"], style["why"]) == (
            pinned["memory_id"], "in the style of a ukiyo-e woodblock print", 1.0, "pinned")
        # the provider gets prompt phrases joined by commas (issue 13), not "{prompt}. Style: ..."
        assert made["final_prompt"] == f"{prompt}, in the style of a ukiyo-e woodblock print"


async def test_a_style_about_one_kind_of_image_applies_to_that_kind_only(client: Client) -> None:
    logos = await call(client, "save_memory", content="logos should be minimal flat vector art in two colours",
                       kind="style")
    landscapes = await call(client, "save_memory", content="landscapes should be muted watercolour",
                            kind="style")
    logo = await call(client, "generate_image", prompt="a logo for a coffee shop called Bean There", dry_run=True)
    assert style_ids(logo) == [logos["memory_id"]]
    assert logo["final_prompt"] == ("a logo for a coffee shop called Bean There, "
                                    "minimal flat vector art in two colours")
    valley = await call(client, "generate_image", prompt="a mountain landscape with a river at sunset",
                        dry_run=True)
    assert style_ids(valley) == [landscapes["memory_id"]]
    for prompt in ("a portrait of an old fisherman", "a cat asleep on a windowsill"):
        other = await call(client, "generate_image", prompt=prompt, dry_run=True)
        assert other["applied"]["styles"] == [] and other["final_prompt"] == prompt


SUBJECTS = [
    "a spaceship over the ocean",
    "a bowl of ramen with chopsticks",
    "a sports car in red",
    "a lighthouse in a storm",
    "a red spaceship landing on mars",
]


async def make_subject_images(client: Client) -> dict[str, str]:
    return {prompt: (await call(client, "generate_image", prompt=prompt, **SMALL))["image_id"]
            for prompt in SUBJECTS}


async def test_my_last_subject_image_is_the_later_of_two(client: Client) -> None:
    made = await make_subject_images(client)
    later, earlier = made["a red spaceship landing on mars"], made["a spaceship over the ocean"]
    used = await call(client, "generate_image", prompt="the same ship, now at night",
                      reference="my last spaceship image", **SMALL)
    ref = used["applied"]["reference"]
    assert ref["image_id"] == later and used["parent_id"] == later
    assert ref["mode"] == "image_to_image" and ref["prompt"] == "a red spaceship landing on mars"
    assert earlier in [alt["image_id"] for alt in ref["alternatives"]]
    car = await call(client, "generate_image", prompt="in blue", reference="my last car picture", dry_run=True)
    assert car["applied"]["reference"]["image_id"] == made["a sports car in red"]
    assert "no image of yours matches" in await call_error(
        client, "generate_image", prompt="x", reference="my last giraffe image", dry_run=True)


@pytest.mark.slow
async def test_my_last_subject_image_survives_a_server_restart(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    async with served(make_settings(), embedder) as client:
        made = await make_subject_images(client)
    async with served(make_settings(), embedder) as client:  # a new server over the same data directory
        again = await call(client, "generate_image", prompt="the same ship, now at night",
                           reference="my last spaceship image", dry_run=True)
        ramen = await call(client, "generate_image", prompt="with an egg", reference="my last ramen image",
                           dry_run=True)
        assert "no previous image in this session" in await call_error(
            client, "generate_image", prompt="x", reference="the previous one", dry_run=True)
        assert "no previous image in this session" in await call_error(
            client, "generate_image", prompt="x", reference="the one you just made", dry_run=True)
    assert again["applied"]["reference"]["image_id"] == made["a red spaceship landing on mars"]
    assert ramen["applied"]["reference"]["image_id"] == made["a bowl of ramen with chopsticks"]


async def test_saying_the_same_thing_again_keeps_one_memory_and_applies_it_once(client: Client) -> None:
    first = await call(client, "save_memory", content="I prefer watercolor illustrations", kind="style",
                       pinned=True, tags=["medium"])
    for repeat in ("i prefer watercolor illustrations.", "Watercolor illustrations are my preference"):
        again = await call(client, "save_memory", content=repeat, kind="style", tags=["again"])
        assert again["merged_into"] == first["memory_id"]
    different = await call(client, "save_memory", content="I prefer oil paintings", kind="style")
    assert different["merged_into"] is None
    listed = (await call(client, "get_all_memories", kind="style"))["memories"]
    assert {m["memory_id"]: m["tags"] for m in listed} == {first["memory_id"]: ["medium", "again"],
                                                           different["memory_id"]: []}
    made = await call(client, "generate_image", prompt="a village by a lake", dry_run=True)
    assert style_ids(made).count(first["memory_id"]) == 1
    assert made["final_prompt"].count("watercolor") == 1


# --- two users, one data directory ---------------------------------------------------------------------


async def seed(client: Client, who: str) -> dict[str, str]:
    memory = await call(client, "save_memory", content=f"{who} likes {who}-coloured gothic cathedrals",
                        kind="style", pinned=True)
    image = await call(client, "generate_image", prompt=f"a gothic cathedral for {who}", **SMALL)
    return {"memory": memory["memory_id"], "image": image["image_id"]}


async def sees(client: Client) -> str:
    """Everything a user can list, search or resolve about cathedrals, as one string to look for ids in."""
    seen = [
        await call(client, "get_all_memories"),
        await call(client, "search_memories", query="gothic cathedral", limit=50),
        await call(client, "search_images", query="gothic cathedral", limit=50),
        await call(client, "list_recent_generations", limit=100),
        await call(client, "generate_image", prompt="a cathedral", reference="my last cathedral image",
                   dry_run=True),
        (await client.read_resource("memory://all")).contents[0].text,  # type: ignore[union-attr]
        (await client.read_resource("image://list")).contents[0].text,  # type: ignore[union-attr]
    ]
    return repr(seen)


async def test_two_users_on_one_data_directory_never_see_each_other(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    """`a` starts first and holds the Chroma lock; `b` (a second process in real life) searches with the
    FTS5 fallback. Then `a` stops and `b` takes the index: neither path shows `b` anything of `a`'s."""
    app_a = App.create(make_settings(CONTEXT_SERVER_USER="a"), embedder=embedder)
    app_b = App.create(make_settings(CONTEXT_SERVER_USER="b"), embedder=embedder)
    try:
        async with Client(build_server(app_a)) as a, Client(build_server(app_b)) as b:
            ids_a = await seed(a, "a")
            await call(a, "search_memories", query="colours")  # a's first search takes the index
            ids_b = await seed(b, "b")
            assert app_a.indexer.uses_vectors and not app_b.indexer.holds_index
            seen_a, seen_b = await sees(a), await sees(b)
            assert all(i in seen_a for i in ids_a.values()) and all(i not in seen_a for i in ids_b.values())
            assert all(i in seen_b for i in ids_b.values()) and all(i not in seen_b for i in ids_a.values())
            assert "a-coloured" not in seen_b and "for a" not in seen_b
            assert "not found" in await call_error(b, "delete_memory", memory_id=ids_a["memory"])
            assert "no image" in await call_error(b, "generate_image", prompt="x", reference=ids_a["image"],
                                                  dry_run=True)
        await app_a.aclose()
        app_b.indexer.maintain()
        assert app_b.indexer.uses_vectors
        async with Client(build_server(app_b)) as b:
            seen_b = await sees(b)
        assert all(i in seen_b for i in ids_b.values()) and all(i not in seen_b for i in ids_a.values())
    finally:
        await app_a.aclose()
        await app_b.aclose()


# --- a crash with index work queued --------------------------------------------------------------------

# Runs in a child process: writes through the domain the way the server does, never takes the index (no
# search, memory not applied), so every write stays in the outbox, then dies by SIGKILL before any drain.
CRASHING_WRITER = textwrap.dedent("""
    import asyncio, os, signal, sys
    from context_server.app import App
    from context_server.domain.generation.input import GenerationInput
    from context_server.settings import Settings

    async def main() -> None:
        for user in ("a", "b"):
            app = App.create(Settings.from_env({"CONTEXT_SERVER_HOME": sys.argv[1], "CONTEXT_SERVER_USER": user}))
            session = app.sessions.touch(user, "stdio")
            kept = app.memories.save(user, f"{user} wants pastel skies", kind="style")
            gone = app.memories.save(user, f"{user} wants neon skies", kind="note")
            app.memories.save(user, f"{user} wants sepia for now", kind="style", scope="session",
                            session_id=session.id)
            app.memories.delete(user, gone.memory_id)
            app.memories.delete(user, sys.argv[2] if user == "a" else sys.argv[3])  # indexed before
            for prompt, incognito in ((f"a harbour for {user}", False), (f"a secret for {user}", True)):
                await app.generations.generate(user, session, GenerationInput(
                    prompt=prompt, width=64, height=64, apply_memory=False, incognito=incognito))
            app.images.delete(user, sys.argv[4] if user == "a" else sys.argv[5])  # indexed before
            assert not app.indexer.holds_index
        pending = app.store.one("select count(*) as n from outbox")["n"]
        print(pending, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
""")


def indexed(home: Path, user: str, kind: str) -> set[str]:
    index = vector_index(Settings(home=home))
    try:
        return set(index._collection(user, kind).get(include=[])["ids"])
    finally:
        index.close()


def truth(store: Store, user: str, kind: str) -> set[str]:
    sql = ("select id from memories where user_id = ? and scope = 'long_term'" if kind == "memories"
           else "select id from images where user_id = ? and incognito = 0")
    return {r["id"] for r in store.query(sql, [user])}


@pytest.mark.slow
async def test_a_server_killed_with_a_full_outbox_restarts_with_an_index_that_matches_sqlite(
    home: Path, make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    before: dict[str, dict[str, str]] = {}
    for user in ("a", "b"):  # a first, clean run: these items reach Chroma
        app = App.create(make_settings(CONTEXT_SERVER_USER=user), embedder=embedder)
        async with Client(build_server(app)) as client:
            before[user] = {"memory": (await call(client, "save_memory", content=f"{user} old note",
                                                  kind="note"))["memory_id"],
                            "image": (await call(client, "generate_image", prompt=f"an old barn for {user}",
                                                 **SMALL))["image_id"]}
            await call(client, "search_memories", query="old note")  # a search waits for the index
            assert app.indexer.uses_vectors
        await app.aclose()
    assert before["a"]["memory"] in indexed(home, "a", "memories")

    child = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(home), before["a"]["memory"], before["b"]["memory"],
         before["a"]["image"], before["b"]["image"]],
        cwd=WORKTREE, env={**os.environ, "PYTHONPATH": str(WORKTREE)}, capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert int(child.stdout.decode().split()[-1]) >= 10  # the crash left work queued
    for user in ("a", "b"):  # Chroma has not heard of the crashed process's writes yet
        assert before[user]["memory"] in indexed(home, user, "memories")

    # The next start, in this process (what a stdio server runs, less the process start; the crash above is
    # the process this test is about).
    async with served(make_settings(CONTEXT_SERVER_USER="a"), embedder) as client:
        found = await call(client, "search_memories", query="pastel skies")
        assert found["memories"] and found["memories"][0]["content"] == "a wants pastel skies"

    store = Store(home / "context.db")
    try:
        assert store.one("select count(*) as n from outbox") == {"n": 0}
        for user in ("a", "b"):
            for kind in ("memories", "images"):
                assert indexed(home, user, kind) == truth(store, user, kind), (user, kind)
            assert len(truth(store, user, "memories")) == 1 and len(truth(store, user, "images")) == 1
            assert store.one("select count(*) as n from images where user_id = ? and incognito = 1",
                             [user]) == {"n": 1}
        # the killed process could not end its sessions; the next start did, and forgot their memories
        assert store.one("select count(*) as n from memories where scope = 'session'") == {"n": 0}
        assert store.one("select count(*) as n from sessions") == {"n": 0}
    finally:
        store.close()


async def test_a_start_ends_only_the_sessions_of_servers_that_are_gone(
    make_settings: Callable[..., Settings], embedder: Embedder
) -> None:
    settings = make_settings()
    running = App.create(settings, embedder=embedder)  # a server still serving this data directory
    live = running.sessions.touch("local", "stdio")
    running.memories.save("local", "sepia, for this chat", kind="style", scope="session", session_id=live.id)
    crashed = App.create(settings, embedder=embedder)  # one that will be killed
    dead = crashed.sessions.touch("local", "stdio")
    crashed.memories.save("local", "neon, for that chat", kind="style", scope="session", session_id=dead.id)
    with crashed.store.write() as db:
        db.execute("update sessions set owner = ? where id = ?", [f"{socket.gethostname()}:999999:dead", dead.id])
    crashed.store.close()

    starting = App.create(settings, embedder=embedder)
    await starting.start()
    kept = [r["content"] for r in starting.store.query("select content from memories where scope = 'session'")]
    await starting.aclose()
    await running.aclose()
    assert kept == ["sepia, for this chat"]
