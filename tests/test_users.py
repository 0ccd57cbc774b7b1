"""HTTP users and tokens: the domain on a real Store, the `users` verbs (in process), and `serve` run as the
installed command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from context_server.app import App
from context_server.domain.users import hash_token
from context_server.errors import Conflict, InvalidInput, NotFound

from .conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.anyio
async def test_a_token_verifies_until_its_user_is_revoked(app: App) -> None:
    user, token = app.users.add("Alice")
    assert user.id == user.name == "alice" and user.tokens == 1
    assert token.startswith("cs_") and len(token) >= 40
    assert app.users.verify(token) == "alice"
    assert app.users.verify(token + "x") is None and app.users.verify("") is None
    app.users.revoke("alice")
    assert app.users.verify(token) is None
    assert app.users.get("alice").revoked_at is not None


@pytest.mark.anyio
async def test_adding_an_active_user_again_is_refused_and_a_revoked_one_is_reinstated(app: App) -> None:
    _, first = app.users.add("bob")
    with pytest.raises(Conflict, match="revoke"):
        app.users.add("bob")
    app.users.revoke("bob")
    user, second = app.users.add("bob")
    assert user.revoked_at is None and user.tokens == 1
    assert app.users.verify(second) == "bob" and app.users.verify(first) is None


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["", "-lead", "a b", "../etc", "x" * 65, "émile", "a/b"])
async def test_user_names_are_slugs(app: App, name: str) -> None:
    with pytest.raises(InvalidInput, match="not allowed"):
        app.users.add(name)


@pytest.mark.anyio
async def test_tokens_are_stored_only_as_hashes(app: App) -> None:
    _, token = app.users.add("carol")
    raw = b"".join(p.read_bytes() for p in app.settings.home.glob("context.db*"))  # the db and its WAL
    assert token.encode() not in raw and token[3:].encode() not in raw
    assert app.store.one("select token_hash from tokens")["token_hash"] == hash_token(token)  # type: ignore[index]


@pytest.mark.anyio
async def test_revoking_an_unknown_user_is_not_found(app: App) -> None:
    with pytest.raises(NotFound):
        app.users.revoke("nobody")


def spawn(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed command in a new process."""
    return subprocess.run([sys.executable, "-m", "context_server.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "CONTEXT_SERVER_HOME": str(home), **env})


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The same verbs in process (`run_cli`: exit code, stdout and stderr apart)."""
    return run_cli(home, *args, **env)


@pytest.mark.slow
def test_users_verbs(home: Path) -> None:
    added = cli(home, "users", "add", "dana")
    assert added.returncode == 0, added.stderr
    token = added.stdout.splitlines()[-1]
    assert token.startswith("cs_") and " " not in token
    listed = cli(home, "users", "list")
    assert "dana" in listed.stdout and "active, 1 token(s)" in listed.stdout and token not in listed.stdout
    assert token not in cli(home, "users", "list", "--json").stdout
    again = cli(home, "users", "add", "dana")
    assert again.returncode == 1 and "already exists" in again.stderr and token not in again.stdout
    revoked = cli(home, "users", "revoke", "dana")
    assert revoked.returncode == 0 and revoked.stdout == ""
    assert "revoked" in cli(home, "users", "list").stdout
    assert cli(home, "users", "revoke", "nobody").returncode == 1


@pytest.mark.slow
def test_serve_refuses_an_unsafe_bind_with_what_to_set(home: Path) -> None:
    public = spawn(home, "serve", "--transport", "http", "--host", "0.0.0.0")  # a refusal must not serve
    assert public.returncode == 2 and "CONTEXT_SERVER_ALLOWED_HOSTS" in public.stderr and public.stdout == ""
    no_auth = spawn(home, "serve", "--transport", "http", "--host", "0.0.0.0", "--no-auth",
                  CONTEXT_SERVER_ALLOWED_HOSTS="h", CONTEXT_SERVER_ALLOWED_ORIGINS="https://h")
    assert no_auth.returncode == 2 and "--no-auth is refused" in no_auth.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize("no_auth", [False, True])
def test_serve_http_end_to_end(home: Path, no_auth: bool) -> None:
    token = cli(home, "users", "add", "erin").stdout.splitlines()[-1]
    port = free_port()
    args = [sys.executable, "-m", "context_server.cli", "serve", "--transport", "http", "--port", str(port)]
    proc = subprocess.Popen([*args, *(["--no-auth"] if no_auth else [])], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "CONTEXT_SERVER_HOME": str(home)})
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
        headers = {"Accept": "application/json, text/event-stream"}
        for _ in range(150):
            try:
                anonymous = httpx.post(url, json=body, headers=headers, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert anonymous.status_code == (200 if no_auth else 401)
        authed = httpx.post(url, json=body, headers={**headers, "Authorization": f"Bearer {token}"}, timeout=5)
        assert authed.status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert out == ""  # stdout is never used, even over HTTP
    assert ("warning: --no-auth" in err) == no_auth
    assert token not in err
