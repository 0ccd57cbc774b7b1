"""Which addresses the HTTP server may bind to, and which Host and Origin values it then accepts.

Plain policy with no SDK import, so `serve` refuses an unsafe bind before loading the server (`server/http.py`
turns the allow-lists into the SDK's transport security).
"""

from __future__ import annotations

import ipaddress

from context_server.errors import InvalidInput

__all__ = ["LOOPBACK_HOSTS", "LOOPBACK_ORIGINS", "allow_lists", "is_loopback"]

LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allow_lists(host: str, allowed_hosts: list[str], allowed_origins: list[str], *,
                auth: bool = True) -> tuple[list[str], list[str]]:
    """The Host and Origin allow-lists for a bind address: loopback names on loopback, explicit lists
    elsewhere. Raises `InvalidInput` saying what to change when the bind is unsafe.

    A server on a routable address cannot guess the names its clients use (a reverse proxy's public
    name, a LAN hostname), and accepting any would reopen DNS rebinding, so it refuses to start instead.
    """
    if not auth and not is_loopback(host):
        raise InvalidInput(f"--no-auth is refused on {host}: without tokens anyone who can reach the port "
                           "acts as one user. Bind to 127.0.0.1, or create tokens with `context-server users add`.")
    hosts, origins = list(allowed_hosts), list(allowed_origins)
    if is_loopback(host):
        hosts += LOOPBACK_HOSTS
        origins += LOOPBACK_ORIGINS
    elif not hosts or not origins:
        missing = " and ".join(
            name for name, value in (("CONTEXT_SERVER_ALLOWED_HOSTS", hosts),
                                     ("CONTEXT_SERVER_ALLOWED_ORIGINS", origins)) if not value
        )
        raise InvalidInput(
            f"binding to {host} (not loopback) needs explicit allow-lists: set {missing}. "
            "CONTEXT_SERVER_ALLOWED_HOSTS is the comma-separated Host values clients send "
            "(e.g. mcp.example.com,mcp.example.com:443; 'name:*' allows any port); "
            "CONTEXT_SERVER_ALLOWED_ORIGINS is the browser origins allowed to call "
            "(e.g. https://mcp.example.com). See docs/team.md."
        )
    return hosts, origins
