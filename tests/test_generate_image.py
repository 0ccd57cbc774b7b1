"""generate_image and friends, driven through a real in-memory MCP client."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from mcp import Client
from PIL import Image

from context_server.app import App
from context_server.server import build_server
from context_server.settings import Settings

from .conftest import call, call_error
from .fakes_counting import CountingProvider

pytestmark = pytest.mark.anyio


@pytest.fixture
async def counting(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[App, CountingProvider, Client]]:
    provider = CountingProvider(delay=0.3)
    provider.name = "placeholder"
    app = App.create(make_settings(CONTEXT_SERVER_WAIT_SECONDS="10"), providers=[provider])
    async with Client(build_server(app)) as client:
        yield app, provider, client
    await app.aclose()


def _mean_rgb(path: str) -> tuple[float, float, float]:
    img = Image.open(path).convert("RGB").resize((32, 32))
    pixels = list(img.getdata())
    return tuple(sum(p[i] for p in pixels) / len(pixels) for i in range(3))  # type: ignore[return-value]


async def test_generate_returns_a_stored_image_of_the_requested_size(client: Client, home: Path) -> None:
    result = await client.call_tool("generate_image", {"prompt": "a lighthouse on a cliff", "width": 640, "height": 384})
    assert not result.is_error
    data = result.structured_content
    assert data is not None
    assert data["status"] == "completed"
    assert data["uri"] == f"image://{data['image_id']}/view"
    assert Path(data["path"]).is_file() and Path(data["path"]).is_relative_to(home / "images" / "local")
    with Image.open(data["path"]) as img:
        assert img.size == (640, 384) and img.format == "PNG"
    assert (data["width"], data["height"], data["format"]) == (640, 384, "png")
    assert data["final_prompt"] == "a lighthouse on a cliff"
    assert data["applied"] == {"styles": [], "profile": {}, "template": None, "template_version": None,
                               "reference": None, "left_out": []}
    kinds = [block.type for block in result.content]
    assert kinds == ["text", "image", "resource_link"]
    preview = result.content[1]
    import base64

    raw = base64.b64decode(preview.data)  # type: ignore[union-attr]
    assert len(raw) <= 150_000
    with Image.open(io.BytesIO(raw)) as img:
        assert max(img.size) <= 512
    assert result.content[2].uri == data["uri"]  # type: ignore[union-attr]


async def test_structured_content_never_carries_image_bytes(client: Client) -> None:
    data = await call(client, "generate_image", prompt="tiny red square", width=64, height=64)
    flat = repr(data)
    assert "iVBOR" not in flat and "/9j/" not in flat and len(flat) < 5000


async def test_same_prompt_and_seed_give_identical_pixels(client: Client) -> None:
    a = await call(client, "generate_image", prompt="a green forest", seed=7, width=128, height=128)
    b = await call(client, "generate_image", prompt="a green forest", seed=7, width=128, height=128)
    c = await call(client, "generate_image", prompt="a green forest", seed=8, width=128, height=128)
    assert a["image_id"] != b["image_id"]
    assert Path(a["path"]).read_bytes() == Path(b["path"]).read_bytes()
    assert Path(a["path"]).read_bytes() != Path(c["path"]).read_bytes()


async def test_placeholder_colours_follow_the_prompt(client: Client) -> None:
    red = _mean_rgb((await call(client, "generate_image", prompt="red", seed=1, width=128, height=128))["path"])
    ocean = _mean_rgb((await call(client, "generate_image", prompt="ocean", seed=1, width=128, height=128))["path"])
    forest = _mean_rgb((await call(client, "generate_image", prompt="forest", seed=1, width=128, height=128))["path"])
    assert red[0] > red[1] and red[0] > red[2]
    assert ocean[2] > ocean[0] and ocean[2] > ocean[1]
    assert forest[1] > forest[0] and forest[1] > forest[2]


async def test_aspect_ratio_chooses_the_size(client: Client) -> None:
    data = await call(client, "generate_image", prompt="a wide valley", aspect_ratio="16:9")
    assert data["width"] / data["height"] == pytest.approx(16 / 9, rel=0.01)
    assert max(data["width"], data["height"]) == 1024


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"prompt": ""}, "prompt must be 1..4000 characters; got 0 characters"),
        ({"prompt": "x" * 4001}, "prompt must be 1..4000 characters; got 4001 characters"),
        ({"prompt": "x", "width": 63}, "width must be 64..4096; got 63"),
        ({"prompt": "x", "height": 5000}, "height must be 64..4096; got 5000"),
        ({"prompt": "x", "aspect_ratio": "5:4"}, "1:1"),
        ({"prompt": "x", "provider": "nope"}, "available: placeholder"),
        ({"prompt": "x", "model": "nope"}, "its models are placeholder-1"),
    ],
)
async def test_bad_input_is_refused_with_what_is_allowed_and_stores_nothing(
    client: Client, app: App, arguments: dict[str, object], expected: str
) -> None:
    text = await call_error(client, "generate_image", **arguments)
    assert expected in text
    assert app.store.query("select count(*) as n from jobs")[0]["n"] == 0
    assert app.store.query("select count(*) as n from images")[0]["n"] == 0
    # the server is still up
    assert (await call(client, "list_providers"))["providers"]


async def test_dry_run_reports_the_final_prompt_and_stores_nothing(client: Client, app: App) -> None:
    data = await call(client, "generate_image", prompt="a castle", dry_run=True, width=256, height=256)
    assert data["dry_run"] is True and data["image_id"] is None and data["final_prompt"] == "a castle"
    assert app.store.query("select count(*) as n from jobs")[0]["n"] == 0
    assert not (app.settings.images_path / "local").exists() or not any((app.settings.images_path / "local").iterdir())


async def test_request_id_repeat_returns_the_first_result_without_a_second_provider_call(
    counting: tuple[App, CountingProvider, Client],
) -> None:
    _, provider, client = counting
    first = await call(client, "generate_image", prompt="a kite", width=64, height=64, request_id="r-1")
    again = await call(client, "generate_image", prompt="a kite", width=64, height=64, request_id="r-1")
    assert provider.calls == 1
    assert again["image_id"] == first["image_id"] and again["job_id"] == first["job_id"]


async def test_concurrent_calls_with_one_request_id_make_one_provider_call(
    counting: tuple[App, CountingProvider, Client],
) -> None:
    _, provider, client = counting
    results: list[dict[str, object]] = []

    async def one() -> None:
        results.append(await call(client, "generate_image", prompt="a storm", width=64, height=64, request_id="same"))

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(one)
    assert provider.calls == 1
    assert len({r["image_id"] for r in results}) == 1 and len(results) == 100


async def test_wait_false_returns_running_then_get_generation_completes(
    counting: tuple[App, CountingProvider, Client],
) -> None:
    _, _, client = counting
    started = await call(client, "generate_image", prompt="a slow sunset", width=64, height=64, wait=False)
    assert started["status"] == "running" and started["image_id"] is None
    for _ in range(100):
        status = await call(client, "get_generation", job_id=started["job_id"])
        if status["status"] != "running":
            break
        await anyio.sleep(0.05)
    assert status["status"] == "completed" and status["image_id"] and status["progress"] == 1.0


async def test_a_generation_past_the_wait_time_comes_back_running_and_finishes_in_the_background(
    make_settings: Callable[..., Settings],
) -> None:
    provider = CountingProvider(delay=0.6)
    provider.name = "placeholder"
    app = App.create(make_settings(CONTEXT_SERVER_WAIT_SECONDS="0.2"), providers=[provider])
    async with Client(build_server(app)) as client:
        data = await call(client, "generate_image", prompt="a long render", width=64, height=64)
        assert data["status"] == "running"
        for _ in range(200):
            done = await call(client, "get_generation", job_id=data["job_id"])
            if done["status"] != "running":
                break
            await anyio.sleep(0.05)
        assert done["status"] == "completed" and Path(done["path"]).is_file()
    await app.aclose()


async def test_progress_notifications_reach_a_client_that_asks(
    counting: tuple[App, CountingProvider, Client],
) -> None:
    _, _, client = counting
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    result = await client.call_tool("generate_image", {"prompt": "progress", "width": 64, "height": 64},
                                    progress_callback=on_progress)
    assert not result.is_error
    assert len(seen) >= 3 and seen == sorted(seen)


async def test_a_failing_provider_marks_the_job_failed_with_its_message(make_settings: Callable[..., Settings]) -> None:
    provider = CountingProvider(fail="the provider rejected the key; check OPENAI_API_KEY")
    provider.name = "placeholder"
    app = App.create(make_settings(), providers=[provider])
    async with Client(build_server(app)) as client:
        result = await client.call_tool("generate_image", {"prompt": "x", "width": 64, "height": 64})
        assert result.is_error
        assert result.structured_content is not None
        assert result.structured_content["status"] == "failed"
        assert "check OPENAI_API_KEY" in result.structured_content["error"]
        assert app.store.query("select count(*) as n from images")[0]["n"] == 0
    await app.aclose()


async def test_list_recent_generations_is_newest_first_and_paged(client: Client) -> None:
    for i in range(5):
        await call(client, "generate_image", prompt=f"picture {i}", width=64, height=64)
    page1 = await call(client, "list_recent_generations", limit=3)
    assert [g["prompt"] for g in page1["generations"]] == ["picture 4", "picture 3", "picture 2"]
    page2 = await call(client, "list_recent_generations", limit=3, cursor=page1["next_cursor"])
    assert [g["prompt"] for g in page2["generations"]] == ["picture 1", "picture 0"]
    assert page2["next_cursor"] is None
    assert "cursor is not valid" in await call_error(client, "list_recent_generations", cursor="garbage!")


async def test_delete_image_removes_file_and_metadata(client: Client) -> None:
    data = await call(client, "generate_image", prompt="to delete", width=64, height=64)
    assert (await call(client, "delete_image", image_id=data["image_id"]))["deleted"] is True
    assert not Path(data["path"]).exists()
    assert "no image" in await call_error(client, "delete_image", image_id=data["image_id"])
    with pytest.raises(Exception, match="not found"):
        await client.read_resource(f"image://{data['image_id']}/metadata")


async def test_a_generated_image_is_indexed_at_once_without_waiting_for_a_search(
        client: Client, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the warm-up runs the background drainer, a generation wakes it as a saved memory does: the image
    is embedded in the background right away, not by the user's next search (on its path) or a maintenance
    pass (every 10 s; held off here)."""
    import context_server.app as app_module

    monkeypatch.setattr(app_module, "MAINTAIN_EVERY_SECONDS", 3600.0)
    passes = 0
    maintain = app.indexer.maintain

    def counted() -> None:
        nonlocal passes
        maintain()
        passes += 1

    monkeypatch.setattr(app.indexer, "maintain", counted)

    def outbox() -> int:
        return int(app.store.one("select count(*) as n from outbox")["n"])  # type: ignore[index]

    await client.list_tools()  # the first answer releases the warm-up: drainer, then a maintenance pass
    with anyio.fail_after(60):
        while not passes:
            await anyio.sleep(0.02)
    data = await call(client, "generate_image", prompt="a lighthouse at dusk", width=64, height=64)
    with anyio.move_on_after(5):
        while outbox():
            await anyio.sleep(0.02)
    assert outbox() == 0 and passes == 1
    assert app.store.one("select item_id from item_vectors where item_id = ?", [data["image_id"]]) is not None


async def test_one_users_images_are_invisible_to_another(make_settings: Callable[..., Settings]) -> None:
    app_a = App.create(make_settings(CONTEXT_SERVER_USER="a"))
    app_b = App.create(make_settings(CONTEXT_SERVER_USER="b"))
    async with Client(build_server(app_a)) as a, Client(build_server(app_b)) as b:
        mine = await call(a, "generate_image", prompt="canary-a7 secret garden", width=64, height=64)
        missing = await call_error(b, "delete_image", image_id=mine["image_id"])
        unknown = await call_error(b, "delete_image", image_id="0" * 32)
        assert missing.replace(mine["image_id"], "X") == unknown.replace("0" * 32, "X")
        assert "no generation job" in await call_error(b, "get_generation", job_id=mine["job_id"])
        listed = await call(b, "list_recent_generations")
        assert "canary-a7" not in repr(listed)
        with pytest.raises(Exception, match="not found"):
            await b.read_resource(f"image://{mine['image_id']}/view")
        assert Path(mine["path"]).exists()
    await app_a.aclose()
    await app_b.aclose()


async def test_list_providers_describes_the_placeholder(client: Client) -> None:
    data = await call(client, "list_providers")
    placeholder = next(p for p in data["providers"] if p["name"] == "placeholder")
    assert placeholder["configured"] is True
    assert placeholder["cost_per_image_usd"] == {"placeholder-1": 0.0}
    assert placeholder["capabilities"]["image_to_image"] is True
    assert set(placeholder["capabilities"]["aspect_ratios"]) >= {"1:1", "16:9"}
