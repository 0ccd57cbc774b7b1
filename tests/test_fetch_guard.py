"""fetch_remote_image refuses anything that could reach the server's own network (SPEC §8)."""

from __future__ import annotations

import ipaddress

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from context_server.adapters.fetch import check_address, fetch_remote_image, parse_host
from context_server.errors import InvalidInput
from tests.fakes import make_png, serve_in_thread

pytestmark = pytest.mark.anyio

PUBLIC = "93.184.216.34"
PNG = make_png(64, 48, "remote")


def public_resolver(host: str) -> list[str]:
    return {
        "evil.example": ["10.1.2.3"],
        "mixed.example": [PUBLIC, "127.0.0.1"],
        "v6.example": ["::ffff:192.168.0.1"],
    }.get(host, [PUBLIC])


class Recorder:
    """A MockTransport handler serving PNG, recording what reached it."""

    def __init__(self, routes: dict[str, httpx.Response] | None = None) -> None:
        self.seen: list[httpx.Request] = []
        self.routes = routes or {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        host = request.headers["host"]
        found = self.routes.get(f"{host}{request.url.path}")
        return (
            found
            if found is not None
            else httpx.Response(200, content=PNG, headers={"content-type": "image/png"})
        )


async def fetch(url: str, handler: Recorder, **kwargs: object) -> bytes:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await fetch_remote_image(url, client, resolver=public_resolver, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "http://images.example/a.png",
        "ftp://images.example/a.png",
        "file:///etc/passwd",
        "https://user:secret@images.example/a.png",
        "https://127.0.0.1/a.png",
        "https://127.1/a.png",
        "https://0x7f000001/a.png",
        "https://2130706433/a.png",
        "https://017700000001/a.png",
        "https://0177.0.0.1/a.png",
        "https://127.0.0.1./a.png",
        "https://[::ffff:127.0.0.1]/a.png",
        "https://[::1]/a.png",
        "https://[::]/a.png",
        "https://0.0.0.0/a.png",
        "https://10.0.0.8/a.png",
        "https://172.16.5.4/a.png",
        "https://192.168.1.1/a.png",
        "https://100.64.0.1/a.png",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://[fe80::1]/a.png",
        "https://224.0.0.1/a.png",
        "https://240.0.0.1/a.png",
        "https://[64:ff9b::7f00:1]/a.png",
        "https://[64:ff9b::a00:1]/a.png",
        "https://[::127.0.0.1]/a.png",
        "https://[2002:7f00:1::]/a.png",
        "https://evil.example/a.png",
        "https://mixed.example/a.png",
        "https://v6.example/a.png",
    ],
)
async def test_unsafe_url_is_refused_before_any_request(url: str) -> None:
    handler = Recorder()
    with pytest.raises(InvalidInput, match=r"only https URLs of public hosts are allowed"):
        await fetch(url, handler)
    assert handler.seen == []


async def test_public_https_image_is_fetched_pinned_to_the_checked_ip_with_original_host() -> None:
    handler = Recorder()
    assert await fetch("https://images.example:8443/cat.png?size=s", handler) == PNG
    (request,) = handler.seen
    assert request.url.host == PUBLIC and request.url.port == 8443
    assert request.headers["host"] == "images.example:8443"
    assert request.extensions["sni_hostname"] == "images.example"
    assert request.url.query == b"size=s"


async def test_redirect_to_loopback_is_refused() -> None:
    handler = Recorder(
        {"images.example/a.png": httpx.Response(302, headers={"location": "https://127.0.0.1/x"})}
    )
    with pytest.raises(InvalidInput, match="loopback"):
        await fetch("https://images.example/a.png", handler)
    assert len(handler.seen) == 1


async def test_redirect_to_a_name_resolving_private_is_refused() -> None:
    handler = Recorder(
        {"images.example/a.png": httpx.Response(301, headers={"location": "https://evil.example/"})}
    )
    with pytest.raises(InvalidInput, match="must be public") as refused:
        await fetch("https://images.example/a.png", handler)
    assert "10.1.2.3" not in str(refused.value) and "private" not in str(refused.value).split(";")[0]


@pytest.mark.parametrize("name", ["evil.example", "mixed.example", "v6.example"])
async def test_a_refusal_names_the_rule_never_what_a_name_resolved_to(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        await fetch(f"https://{name}/a.png", Recorder())
    text = str(refused.value)
    assert f"host {name!r}" in text and "must be public" in text
    for answer in ("10.1.2.3", "127.0.0.1", "192.168", "::ffff", "loopback", "private address"):
        assert answer not in text


async def test_redirect_to_plain_http_is_refused() -> None:
    handler = Recorder(
        {"images.example/a.png": httpx.Response(307, headers={"location": "http://images.example/b"})}
    )
    with pytest.raises(InvalidInput, match="scheme 'http'"):
        await fetch("https://images.example/a.png", handler)


async def test_relative_redirect_to_a_public_host_is_followed() -> None:
    handler = Recorder({"images.example/a.png": httpx.Response(302, headers={"location": "/b.png"})})
    assert await fetch("https://images.example/a.png", handler) == PNG
    assert [r.url.path for r in handler.seen] == ["/a.png", "/b.png"]


async def test_more_than_five_redirects_are_refused() -> None:
    routes = {
        f"images.example/{i}": httpx.Response(302, headers={"location": f"/{i + 1}"}) for i in range(10)
    }
    handler = Recorder(routes)
    with pytest.raises(InvalidInput, match="more than 5"):
        await fetch("https://images.example/0", handler)
    assert len(handler.seen) == 6


async def test_declared_oversize_body_is_refused() -> None:
    big = httpx.Response(200, headers={"content-length": str(30 * 1024 * 1024)}, content=b"")
    with pytest.raises(InvalidInput, match="larger than 20 MiB"):
        await fetch("https://images.example/big", Recorder({"images.example/big": big}))


async def test_oversize_body_without_length_is_cut_off_while_streaming() -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"x" * 1024

    streamed = httpx.Response(200, content=chunks())
    with pytest.raises(InvalidInput, match="larger than 0 MiB"):
        await fetch("https://images.example/s", Recorder({"images.example/s": streamed}), max_bytes=50 * 1024)


async def test_slow_server_hits_the_total_time_cap() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(5)
        return httpx.Response(200, content=PNG)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client:
        with pytest.raises(InvalidInput, match="longer than"):
            await fetch_remote_image(
                "https://images.example/a", client, resolver=public_resolver, timeout=0.2
            )


async def test_error_status_is_reported() -> None:
    with pytest.raises(InvalidInput, match="HTTP 404"):
        await fetch("https://images.example/gone", Recorder({"images.example/gone": httpx.Response(404)}))


async def png_endpoint(request: Request) -> Response:
    return Response(PNG, media_type="image/png")


def test_local_http_image_is_served_only_through_the_explicit_test_hook() -> None:
    base, stop = serve_in_thread(Starlette(routes=[Route("/img.png", png_endpoint)]))
    netloc = base.removeprefix("http://")

    async def run(hosts: tuple[str, ...]) -> bytes:
        async with httpx.AsyncClient() as client:
            return await fetch_remote_image(f"{base}/img.png", client, insecure_test_hosts=hosts)

    try:
        with pytest.raises(InvalidInput, match="scheme 'http'"):
            anyio.run(run, ())
        assert anyio.run(run, (netloc,)) == PNG
    finally:
        stop()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("[::1]", "::1"),
        ("images.example", None),
        ("1.2.3.4.5", None),
    ],
)
def test_parse_host_decodes_the_spellings_resolvers_accept(host: str, expected: str | None) -> None:
    parsed = parse_host(host)
    assert (str(parsed) if parsed else None) == expected


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert check_address(ipaddress.ip_address(address)) is None
