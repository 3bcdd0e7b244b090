"""SSRF guard: refuse URLs whose host resolves to a loopback, private, link-local or otherwise non-public address."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from mcp_web_ingest.errors import BlockedAddressError, FetchError

if TYPE_CHECKING:
    from mcp_web_ingest.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack, AWS IPv6): the classic SSRF prize, named as such.
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254"))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_ULA = ipaddress.ip_network("fc00::/7")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_HINT = "set ALLOW_PRIVATE_NETWORKS=true or add the host to ALLOWED_HOSTS to index local services"


def embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address | None, bool]:
    """The IPv4 address an IPv6 address carries, and whether packets really go to it (mapped, 6to4, NAT64).

    IPv4-compatible (::a.b.c.d) and Teredo addresses carry one too, but reach it only through a tunnel: their own
    IPv6 rules still apply after the embedded address passes.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return None, False
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, True
    if ip.sixtofour is not None:
        return ip.sixtofour, True
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), True
    if ip.teredo is not None:
        return ip.teredo[1], False  # the client address; the server half is public by construction
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d (:: and ::1 stay IPv6)
        return ipaddress.IPv4Address(int(ip)), False
    return None, False


def describe(ip: IPAddress) -> str | None:
    """Why an address may not be fetched ('a private address'...), or None for a public unicast address."""
    inner, transparent = embedded_ipv4(ip)
    if inner is not None:
        why = describe(inner)
        if why:
            return f"{why} ({inner} inside IPv6)"
        if transparent:
            return None
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip in _METADATA:
        return "the cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip in _CGNAT:
        return "a carrier-grade NAT (shared) address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _ULA:
        return "a unique-local (private) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "a non-public address"
    return None


def _parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class AddressPolicy:
    """Which hosts and addresses may be fetched: public ones, plus ALLOWED_HOSTS, or all with ALLOW_PRIVATE_NETWORKS."""

    def __init__(self, *, allow_private_networks: bool = False, allowed_hosts: Iterable[str] = ()) -> None:
        self.allow_private_networks = allow_private_networks
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in allowed_hosts:
            entry = entry.strip().lower().rstrip(".")
            if not entry:
                continue
            try:  # "10.0.0.0/8", "127.0.0.1" and "::1" are networks; anything else is a host name
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.add(entry)
        self._names = frozenset(names)
        self._networks = tuple(networks)

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        """The policy of ALLOW_PRIVATE_NETWORKS and ALLOWED_HOSTS."""
        hosts = settings.allowed_hosts  # a str only via model_copy(update=...), which skips the splitting validator
        hosts = hosts.split(",") if isinstance(hosts, str) else hosts
        return cls(allow_private_networks=settings.allow_private_networks, allowed_hosts=hosts)

    @property
    def enabled(self) -> bool:
        """False when ALLOW_PRIVATE_NETWORKS turns the guard off."""
        return not self.allow_private_networks

    def host_allowed(self, host: str) -> bool:
        """True when the guard is off or the host name is in ALLOWED_HOSTS (then its addresses are not checked)."""
        return not self.enabled or host.lower().rstrip(".") in self._names

    def problem(self, ip: IPAddress) -> str | None:
        """Why this address is refused, or None when it may be fetched."""
        if not self.enabled or any(ip.version == net.version and ip in net for net in self._networks):
            return None
        return describe(ip)

    def vet(self, host: str, addresses: Iterable[str], url: str | None = None) -> list[str]:
        """The addresses, unchanged, if every one is allowed; else BlockedAddressError naming the first bad one."""
        vetted = list(addresses)
        if self.host_allowed(host):
            return vetted
        for text in vetted:
            # A scoped IPv6 address (fe80::1%eth0) parses with its zone; an unparsable answer is refused outright.
            ip = _parse_address(text)
            why = "an address that cannot be checked" if ip is None else self.problem(ip)
            if why:
                target = url or host
                where = "" if _parse_address(host) == ip else f"{host} resolves to "
                raise BlockedAddressError(f"Refusing to fetch {target}: {where}{text}, {why}; {_HINT}", url=url)
        return vetted

    async def check(self, url: str, *, resolve_names: bool = True) -> list[str]:
        """Vet every address the URL's host stands for; returns them ([] when the guard is off or the name allowed).

        Every numeric spelling (2130706433, 0x7f.1, 0177.0.0.1, [::ffff:7f00:1]) is read by getaddrinfo the way the
        socket layer would read it, so the address checked is the one that would be dialled. resolve_names=False
        leaves real host names to a GuardedResolver (no second DNS lookup); numeric hosts are always checked here.
        """
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise FetchError(f"Refusing to fetch {url!r}: invalid URL ({exc})", url=url) from exc
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not host:
            raise FetchError(
                f"Refusing to fetch {url!r}: only http:// and https:// URLs with a host can be fetched", url=url
            )
        host = unquote(host)
        if self.host_allowed(host):
            return []
        port = port or _DEFAULT_PORTS[scheme]
        numeric = _numeric_addresses(host, port)
        if numeric is None and (literal := _parse_address(host)) is not None:
            numeric = [str(literal)]  # e.g. fe80::1%eth9 on a machine without eth9: still checked, never dialled
        if numeric is not None:
            return self.vet(host, numeric, url)
        if ":" in host or host.replace(".", "").isdigit():
            # aiohttp would treat it as an address and dial it without asking a resolver; refuse what we cannot read.
            raise BlockedAddressError(f"Refusing to fetch {url}: {host} is not a valid IP address", url=url)
        if not resolve_names:
            return []
        return self.vet(host, await resolve(host, port, url), url)


def _numeric_addresses(host: str, port: int) -> list[str] | None:
    """The address a numeric host spelling denotes (no DNS: AI_NUMERICHOST), or None for a host name."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve(host: str, port: int, url: str | None = None) -> list[str]:
    """Every address getaddrinfo gives for host (TCP), deduplicated in order; FetchError when it does not resolve."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise FetchError(f"Could not connect to host {host}: {reason}", url=url) from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that vets what it resolves, so a connection goes only to the addresses that were checked.

    Handing the connector exactly the vetted addresses closes the DNS-rebinding gap between check and connect (Host
    and SNI still carry the name). aiohttp never resolves IP-literal hosts: callers check those (AddressPolicy.check).
    """

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The inner resolver's answers if every address passes the policy; BlockedAddressError otherwise."""
        results = await self._inner.resolve(host, port, family)
        self._policy.vet(host, [r["host"] for r in results])
        return results

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


def guarded_connector(policy: AddressPolicy) -> aiohttp.TCPConnector:
    """A TCPConnector whose name lookups go through the policy (a plain one when the guard is off)."""
    return aiohttp.TCPConnector(resolver=GuardedResolver(policy) if policy.enabled else None)


def guarded_session(settings: Settings, **kwargs: Any) -> aiohttp.ClientSession:
    """A ClientSession that refuses forbidden targets on every request and redirect hop; kwargs go to ClientSession.

    Host names are vetted by the connector's resolver; a middleware vets each request's URL first, which is what
    catches IP-literal hosts (aiohttp never resolves those) and redirects into private space.
    """
    policy = AddressPolicy.from_settings(settings)
    if not policy.enabled:
        return aiohttp.ClientSession(**kwargs)

    async def vet_request(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        await policy.check(str(request.url), resolve_names=False)  # names: vetted by the connector's resolver
        return await handler(request)

    return aiohttp.ClientSession(connector=guarded_connector(policy), middlewares=(vet_request,), **kwargs)
