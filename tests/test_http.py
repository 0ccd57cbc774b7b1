"""The HTTP transport over real loopback HTTP: tokens, Host/Origin, hostile bodies, sessions, audit, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from context_server.adapters.providers.openai import OpenAIProvider
from context_server.adapters.providers.placeholder import PlaceholderProvider
from context_server.app import App
from context_server.errors import InvalidInput
from context_server.server.http import check_bind, is_loopback
from context_server.settings import Settings
from tests.fakes import OpenAIFake

from .http_support import INITIALIZE, MCP_HEADERS, RunningServer, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server(app: App) -> AsyncIterator[RunningServer]:
    async with serve(app) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {**MCP_HEADERS, "Authorization": f"Bearer {token}"}


async def post(server: RunningServer, body: Any = INITIALIZE, **headers: str) -> tuple[int, str]:
    async with server.raw() as http:
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = await http.post(server.url, headers={**MCP_HEADERS, **headers}, **kwargs)
        return response.status_code, response.text


async def test_a_request_without_a_token_is_refused_with_401(server: RunningServer) -> None:
    status, text = await post(server)
    assert status == 401 and "invalid_token" in text


async def test_an_unknown_token_is_refused_with_401(server: RunningServer) -> None:
    assert (await post(server, Authorization="Bearer cs_not-a-token"))[0] == 401
    assert (await post(server, Authorization="Basic YWxpY2U6cHc="))[0] == 401


async def test_a_revoked_token_is_refused_at_once(server: RunningServer, app: App) -> None:
    _, token = app.users.add("alice")
    assert (await post(server, **bearer(token)))[0] == 200
    app.users.revoke("alice")
    status, _ = await post(server, **bearer(token))
    assert status == 401


async def test_a_foreign_origin_is_refused_with_403_with_or_without_a_token(server: RunningServer, app: App) -> None:
    _, token = app.users.add("alice")
    assert (await post(server, Origin="http://evil.example"))[0] == 403
    assert (await post(server, Origin="http://evil.example", **bearer(token)))[0] == 403
    assert (await post(server, Origin="https://localhost.evil.example:443", **bearer(token)))[0] == 403


async def test_a_foreign_host_is_refused_with_421(server: RunningServer, app: App) -> None:
    _, token = app.users.add("alice")
    assert (await post(server, Host="evil.example"))[0] == 421
    assert (await post(server, Host="evil.example:8000", **bearer(token)))[0] == 421


async def test_loopback_hosts_and_origins_are_accepted(server: RunningServer, app: App) -> None:
    _, token = app.users.add("alice")
    port = server.url.split(":")[2].split("/")[0]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        status, _ = await post(server, Host=host, Origin=f"http://{host}", **bearer(token))
        assert status == 200, host


async def test_malformed_json_rpc_gets_errors_and_the_server_keeps_serving(server: RunningServer, app: App) -> None:
    _, token = app.users.add("alice")
    for body in (b"{not json", b"", b"\xff\xfe", b"[]", b"42", b'{"jsonrpc": "2.0", "method": 5, "id": 1}',
                 b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}', b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]',
                 b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "nope"}'):
        status, text = await post(server, body, **bearer(token))
        assert 400 <= status < 500, (body, status, text)
    status, text = await post(server, b"{}", **{**bearer(token), "Content-Type": "text/plain"})
    assert status == 400
    async with server.client(token) as client:
        assert (await client.list_tools()).tools


async def test_an_oversized_body_gets_413_and_the_server_keeps_serving(server: RunningServer, app: App) -> None:
    _, token = app.users.add("alice")
    big = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "' + b"a" * (4 * 1024 * 1024) + b'"}}'
    status, _ = await post(server, big, **bearer(token))
    assert status == 413
    async with server.client(token) as client:
        result = await client.call_tool("generate_image", {"prompt": "p" * 4001})
        assert result.is_error and "4000" in result.content[0].text  # type: ignore[union-attr]


async def test_another_users_session_id_is_not_found(server: RunningServer, app: App) -> None:
    _, alice = app.users.add("alice")
    _, bob = app.users.add("bob")
    async with server.raw() as http:
        opened = await http.post(server.url, json=INITIALIZE, headers=bearer(alice))
        session = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        hijack = await http.post(server.url, json=ping, headers={**bearer(bob), "mcp-session-id": session})
        assert hijack.status_code == 404
        own = await http.post(server.url, json=ping, headers={**bearer(alice), "mcp-session-id": session,
                                                               "mcp-protocol-version": "2025-11-25"})
        assert own.status_code == 200


async def test_every_tool_call_is_audited_without_its_arguments(server: RunningServer, app: App) -> None:
    _, token = app.users.add("alice")
    secret = "CANARY-audit-prompt-7f3a"
    async with server.client(token) as client:
        assert not (await client.call_tool("generate_image", {"prompt": secret})).is_error
        assert (await client.call_tool("get_generation", {"job_id": secret})).is_error
        assert (await client.call_tool("no_such_tool", {"x": secret})).is_error
    rows = app.audit.recent("alice")
    assert [(r["tool"], r["outcome"]) for r in reversed(rows)] == [
        ("generate_image", "ok"), ("get_generation", "error"), ("no_such_tool", "error")]
    assert all(r["duration_ms"] >= 0 and r["created_at"] for r in rows)
    dump = repr(app.store.query("select * from audit")) + repr(app.store.query("select * from tokens"))
    assert secret not in dump and token not in dump


@pytest.fixture
async def limited_app(make_settings: Callable[..., Settings]) -> AsyncIterator[App]:
    """Two paid generations a minute (the free placeholder is never throttled), against the OpenAI fake."""
    settings = Settings.from_env(OpenAIFake.env("http://fake") | {
        "CONTEXT_SERVER_HOME": str(make_settings().home), "CONTEXT_SERVER_RATE_LIMIT_PER_MINUTE": "2"})
    http = OpenAIFake().client()
    application = App.create(settings, http_client=http,
                             providers=[PlaceholderProvider(), OpenAIProvider(settings.provider_env, http)])
    try:
        yield application
    finally:
        await application.aclose()


PAID = {"prompt": "a fox", "provider": "openai", "width": 1024, "height": 1024}


async def test_the_generation_rate_limit_is_per_user(limited_app: App) -> None:
    _, alice = limited_app.users.add("alice")
    _, bob = limited_app.users.add("bob")
    async with serve(limited_app) as server:
        async with server.client(alice) as client:
            for _ in range(2):
                assert not (await client.call_tool("generate_image", PAID)).is_error
            limited = await client.call_tool("generate_image", PAID)
            assert limited.is_error and "rate limit" in limited.content[0].text  # type: ignore[union-attr]
        async with server.client(bob) as client:
            assert not (await client.call_tool("generate_image", PAID)).is_error


async def test_without_auth_on_loopback_calls_act_as_the_configured_user(
        make_settings: Callable[..., Settings]) -> None:
    application = App.create(make_settings(CONTEXT_SERVER_USER="solo"))
    try:
        async with serve(application, auth=False) as server, server.client(None) as client:
            made = await client.call_tool("generate_image", {"prompt": "a lighthouse"})
            assert not made.is_error
        assert [r["user_id"] for r in application.audit.recent()] == ["solo"]
        assert application.images.recent("solo")[0][0]["prompt"] == "a lighthouse"
    finally:
        await application.aclose()


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.com", "10.0.0.1"))


def test_a_non_loopback_bind_needs_both_allow_lists(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(InvalidInput, match="CONTEXT_SERVER_ALLOWED_HOSTS and CONTEXT_SERVER_ALLOWED_ORIGINS"):
        check_bind(make_settings(), "0.0.0.0", auth=True)
    with pytest.raises(InvalidInput, match="set CONTEXT_SERVER_ALLOWED_ORIGINS"):
        check_bind(make_settings(CONTEXT_SERVER_ALLOWED_HOSTS="mcp.example.com"), "0.0.0.0", auth=True)
    security = check_bind(make_settings(CONTEXT_SERVER_ALLOWED_HOSTS="mcp.example.com",
                                        CONTEXT_SERVER_ALLOWED_ORIGINS="https://mcp.example.com"), "0.0.0.0", auth=True)
    assert security.allowed_hosts == ["mcp.example.com"]  # no loopback names on a public bind
    assert security.allowed_origins == ["https://mcp.example.com"]


def test_no_auth_is_refused_off_loopback(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(CONTEXT_SERVER_ALLOWED_HOSTS="h", CONTEXT_SERVER_ALLOWED_ORIGINS="https://h")
    with pytest.raises(InvalidInput, match="--no-auth is refused"):
        check_bind(settings, "192.168.1.5", auth=False)
    assert check_bind(make_settings(), "127.0.0.1", auth=False).enable_dns_rebinding_protection
