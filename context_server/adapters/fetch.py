"""Downloading a user-supplied image URL without becoming a way into the server's own network (SPEC §8).

Every hop, the first and each redirect, is checked before any byte is sent:

- the scheme is https, and the URL carries no credentials (`user:pass@`);
- the host is a name or a canonical address; numeric spellings that resolvers quietly accept
  (`127.1`, `0x7f000001`, `2130706433`, `017700000001`) are decoded and judged, and never trusted;
- every address the name resolves to is public: loopback, private, link-local, CGNAT
  (100.64/10), unspecified, multicast, reserved, cloud metadata (169.254.169.254,
  fd00:ec2::254), and IPv4 embedded in IPv6 (mapped, compatible, NAT64, 6to4, Teredo) are refused;
- the connection goes to the address that was checked (the URL is pinned to the IP, with the
  original Host header and TLS server name), so a second DNS answer cannot swap in a private one.

Redirects are followed by hand (at most 5); the body is capped while streaming and the whole
fetch is capped in time. Refusals are `InvalidInput` whose text says what is allowed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection

import anyio
import anyio.to_thread
import httpx

from context_server.errors import InvalidInput

__all__ = ["MAX_BYTES", "MAX_REDIRECTS", "Resolver", "check_address", "fetch_remote_image", "parse_host"]

MAX_BYTES = 20 * 1024 * 1024
MAX_REDIRECTS = 5

Resolver = Callable[[str], list[str]]
"""Host name -> IP address strings. Injectable so tests can map a public-looking name anywhere."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_ALLOWED = "only https URLs of public hosts are allowed (no credentials, no private or local addresses)"


def _system_resolver(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInput(f"could not resolve the image host {host!r} ({exc})") from None
    return [str(info[4][0]).split("%")[0] for info in infos]


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """inet_aton's forms: 1-4 parts, each decimal, 0x-hex or 0-octal; the last part fills the rest."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        try:
            if part.lower().startswith("0x"):
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                values.append(int(part, 10))
        except ValueError:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    number = number * 256 ** (5 - len(values)) + last
    return ipaddress.IPv4Address(number)


def parse_host(host: str) -> IPAddress | None:
    """The address a literal host means, however it is spelled; None for a real name."""
    bare = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(bare.split("%")[0])
    except ValueError:
        return _legacy_ipv4(bare)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64) or (int(ip) >> 32 == 0 and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_address(ip: IPAddress) -> str | None:
    """Why this address may not be fetched from, or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.teredo is not None:
            return "a Teredo tunnel address"
        inner = _embedded_ipv4(ip)
        if inner is not None:
            why = check_address(inner)
            return f"an IPv4-in-IPv6 form of {why}" if why else None
    if ip in _METADATA:
        return "a cloud metadata address"
    for label, flag in (
        ("a loopback address", ip.is_loopback),
        ("an unspecified address", ip.is_unspecified),
        ("a link-local address", ip.is_link_local),
        ("a multicast address", ip.is_multicast),
        ("a shared (CGNAT) address", isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
        ("a private address", ip.is_private),
        ("a reserved address", ip.is_reserved),
        ("a non-public address", not ip.is_global),
    ):
        if flag:
            return f"{label} ({ip})"
    return None


async def _pin(url: httpx.URL, resolver: Resolver, insecure: bool) -> tuple[httpx.URL, dict[str, str]]:
    """Check one hop and return the URL to connect to (the IP) plus the Host header to send."""
    host = url.host
    if not host:
        raise InvalidInput(f"the image URL has no host; {_ALLOWED}")
    literal = parse_host(host)
    if literal is not None:
        canonical = str(literal)
        if isinstance(literal, ipaddress.IPv4Address) and host != canonical:
            why = check_address(literal) or f"an unusual spelling of {canonical}"
            raise InvalidInput(f"the image URL host {host!r} is {why}; {_ALLOWED}")
        addresses = [canonical]
    else:
        addresses = await anyio.to_thread.run_sync(resolver, host)
        if not addresses:
            raise InvalidInput(f"the image host {host!r} has no address")
    checked: list[IPAddress] = []
    for raw in addresses:
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError:
            raise InvalidInput(f"the image host {host!r} did not resolve to a usable address; {_ALLOWED}") from None
        # For a name, the message states the rule and never the answer: on a team server, echoing what an
        # internal name resolves to (or which kind of address it is) would let a user map the network.
        if check_address(ip) and not insecure:
            if literal is not None:
                raise InvalidInput(f"the image URL host {host!r} is {check_address(ip)}; {_ALLOWED}")
            raise InvalidInput(f"the image URL host {host!r} does not resolve only to public addresses "
                               f"(every address a host name resolves to must be public); {_ALLOWED}")
        checked.append(ip)
    target = url.copy_with(host=str(checked[0]))
    host_header = host if url.port is None else f"{host}:{url.port}"
    if ":" in host:
        host_header = f"[{host}]" if url.port is None else f"[{host}]:{url.port}"
    return target, {"Host": host_header}


def _check_shape(url: httpx.URL, insecure_hosts: Collection[str]) -> bool:
    """Validates scheme and credentials; True when this hop is an explicit insecure test host."""
    netloc = url.netloc.decode("ascii", "replace")
    insecure = netloc in insecure_hosts
    if url.userinfo:
        raise InvalidInput(f"the image URL must not contain credentials (user:password@); {_ALLOWED}")
    if url.scheme != "https" and not (insecure and url.scheme == "http"):
        raise InvalidInput(f"the image URL scheme {url.scheme!r} is not allowed; {_ALLOWED}")
    return insecure


async def fetch_remote_image(
    url: str,
    client: httpx.AsyncClient,
    *,
    max_bytes: int = MAX_BYTES,
    timeout: float = 30.0,
    max_redirects: int = MAX_REDIRECTS,
    resolver: Resolver | None = None,
    insecure_test_hosts: Collection[str] = (),
) -> bytes:
    """The bytes at `url`, or InvalidInput saying why not.

    `insecure_test_hosts` ("127.0.0.1:8123") lets a test serve over plain http from loopback; the
    server never passes it.
    """
    resolve = resolver or _system_resolver
    try:
        current = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"the image URL is not a valid URL ({exc}); {_ALLOWED}") from None
    try:
        with anyio.fail_after(timeout):
            for _hop in range(max_redirects + 1):
                insecure = _check_shape(current, insecure_test_hosts)
                target, headers = await _pin(current, resolve, insecure)
                extensions = {"sni_hostname": current.host} if current.scheme == "https" else {}
                request = client.build_request("GET", target, headers=headers, extensions=extensions)
                response = await client.send(request, stream=True, follow_redirects=False)
                try:
                    if response.is_redirect:
                        location = response.headers.get("location", "")
                        try:
                            current = current.join(location)
                        except httpx.InvalidURL:
                            raise InvalidInput("the image URL redirected to an invalid URL") from None
                        continue
                    if not response.is_success:
                        raise InvalidInput(f"the image URL answered HTTP {response.status_code}")
                    return await _read_capped(response, max_bytes)
                finally:
                    await response.aclose()
            raise InvalidInput(f"the image URL redirected more than {max_redirects} times")
    except TimeoutError:
        raise InvalidInput(f"fetching the image URL took longer than {timeout:.0f} s") from None
    except httpx.HTTPError as exc:
        raise InvalidInput(f"could not fetch the image URL ({type(exc).__name__})") from None


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    too_big = f"the image at the URL is larger than {max_bytes // (1024 * 1024)} MiB"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise InvalidInput(too_big)
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise InvalidInput(too_big)
        chunks.append(chunk)
    return b"".join(chunks)
