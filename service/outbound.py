"""HTTP requests to addresses users give us (webhook receivers, audio URLs), and the one guard
that keeps them away from the server's own network.

A URL naming a public host can resolve to 127.0.0.1, to the cloud's metadata service at
169.254.169.254, or to a database on the private network, and a name can resolve differently
between a check and the request (DNS rebinding). So the check is made where the socket is
opened: every connection, redirects included, resolves the host itself, refuses any address in
a private, loopback, link-local or otherwise non-public range unless the operator allowed it
(`WEBHOOK_ALLOW_PRIVATE`, `FETCH_ALLOW_PRIVATE`: `1` for every range, or a list of networks
such as `10.0.0.0/8,127.0.0.1/32`), and connects to the very address it checked. TLS still
verifies the certificate against the host name in the URL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from service.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")


class PrivateAddressRefused(httpx.ConnectError):
    """The host resolved to an address this server does not send requests to."""


@dataclass(frozen=True, slots=True)
class PrivateAllowance:
    """Which non-public addresses may be reached: none, all, or the listed networks."""

    everything: bool = False
    networks: tuple[IPNetwork, ...] = ()

    def permits(self, address: IPAddress) -> bool:
        if is_public(address) or self.everything:
            return True
        return any(address in network for network in self.networks)


def parse_allowance(value: object) -> PrivateAllowance:
    """`1`/`true` allows every private range, `0`/empty none, else comma-separated networks."""
    if isinstance(value, PrivateAllowance):
        return value
    if isinstance(value, bool):
        return PrivateAllowance(everything=value)
    text = str(value).strip().lower()
    if text in TRUE:
        return PrivateAllowance(everything=True)
    if text in FALSE:
        return PrivateAllowance()
    networks = []
    for part in text.split(","):
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{part.strip()!r} is not a network; use 1, 0 or e.g. 10.0.0.0/8,127.0.0.1/32"
            ) from None
    return PrivateAllowance(networks=tuple(networks))


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: nothing private, loopback, link-local, reserved or shared."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def checked_url(url: object, field: str, allowance: PrivateAllowance) -> str:
    """A URL a user gave: http(s) with a host, and not a literal address we would refuse.
    Host names are resolved and checked again when the request is made."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise InvalidRequest(f"`{field}` must be an http(s) URL of at most 2048 characters.")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        raise InvalidRequest(f"`{field}` is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidRequest(f"`{field}` must be an http or https URL with a host.")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return url
    if not allowance.permits(literal):
        raise InvalidRequest(
            f"`{field}` points at a private, loopback or link-local address, which this server "
            "does not send requests to."
        )
    return url


async def resolve_checked(host: str, port: int, allowance: PrivateAllowance) -> str:
    """The address to connect to: the first the host resolves to, if every one is allowed
    (a name with one private address among public ones is refused as a whole)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"could not resolve {host}: {exc.strerror}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise httpx.ConnectError(f"{host} has no address")
    refused = [a for a in addresses if not allowance.permits(a)]
    if refused:
        raise PrivateAddressRefused(
            f"{host} resolves to {refused[0]}, a private, loopback or link-local address"
        )
    return str(addresses[0])


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses it resolved and checked."""

    def __init__(self, allowance: PrivateAllowance) -> None:
        self.allowance = allowance
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await resolve_checked(host, port, self.allowance)
        return await self.inner.connect_tcp(
            address, port, timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise PrivateAddressRefused("unix sockets are never reached from user-given URLs")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_client(
    allowance: PrivateAllowance,
    *,
    timeout: httpx.Timeout | float,
    follow_redirects: bool = False,
    max_redirects: int = 0,
) -> httpx.AsyncClient:
    """An httpx client whose every connection goes through `GuardedBackend`. Proxies from the
    environment are not used: the address checked must be the address reached."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(  # the documented pool, our backend
        ssl_context=httpx.create_ssl_context(),
        max_connections=20,
        network_backend=GuardedBackend(allowance),
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        trust_env=False,
    )
