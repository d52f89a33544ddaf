"""``ClientAddressMiddleware``: the app only ever sees the visitor's masked address."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from consentgate.config import IPSettings
from consentgate.middleware.ipmask import mask_ip

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Request headers that carry a client address onward; the app gets none of them.
ADDRESS_HEADERS = frozenset(
    (
        b"x-forwarded-for",
        b"forwarded",
        b"x-forwarded",
        b"x-real-ip",
        b"x-client-ip",
        b"x-cluster-client-ip",
        b"x-original-forwarded-for",
        b"true-client-ip",
        b"cf-connecting-ip",
        b"fastly-client-ip",
        b"x-azure-clientip",
        b"x-envoy-external-address",
        b"client-ip",
        b"cf-connecting-ipv6",
        b"fly-client-ip",
        b"x-vercel-forwarded-for",
        b"x-appengine-user-ip",
        b"x-forwarded-client-ip",
    )
)


#: Masked addresses remembered per middleware (a visitor sends many requests).
MASK_CACHE_SIZE = 16384


class ClientAddressMiddleware:
    """Pure ASGI middleware that finds the visitor's address, masks it, and hides the rest.

    - With ``trusted_proxies`` set and the TCP peer among them, the client is read from the
      one configured header (``X-Forwarded-For`` or RFC 7239 ``Forwarded``) walking from
      the right through trusted hops; a header from any other sender is ignored.
    - The address is masked (``mask_ip``) and ``scope["client"]`` becomes
      ``(masked, 0)``: the port is dropped too. An address the proxy did not know
      (``Forwarded: for=unknown``) becomes ``None``.
    - From a trusted proxy, ``X-Forwarded-Proto`` (or the client's ``proto=`` in
      ``Forwarded``) sets ``scope["scheme"]``, so the app knows the visitor used HTTPS.
    - Every header that carries a client address (``ADDRESS_HEADERS``) is removed from
      the request the app sees.
    """

    def __init__(self, app: ASGIApp, *, settings: IPSettings | None = None) -> None:
        self.app = app
        settings = settings if settings is not None else IPSettings()
        self.trusted = TrustedProxies(settings.trusted_proxies)
        self._forwarded = settings.proxy_header == "forwarded"
        self._header = b"forwarded" if self._forwarded else b"x-forwarded-for"
        self._v4 = settings.ipv4_prefix
        self._v6 = settings.ipv6_prefix
        self._cache: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = self.rewrite(scope)
        await self.app(scope, receive, send)

    def rewrite(self, scope: Scope) -> Scope:
        """Return an HTTP or WebSocket scope as the app may see it (the same one if it is).

        The server's scope is never changed: a changed one is a shallow copy.
        """
        client = scope.get("client")
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if ADDRESS_HEADERS.isdisjoint(dict(headers)):  # the common case, at C speed
            if client is None:
                return scope
            host = client[0]
            masked = self._masked(host)
            if client[1] == 0 and masked == host:
                return scope  # already masked (an outer instance, or a proxy's port 0)
            return {**scope, "client": (masked, 0) if masked is not None else None}
        host = client[0] if client else None
        if host is not None and self.trusted and self.trusted.contains(host):
            values = [v for n, v in headers if n == self._header]
            if values:
                scheme: str | None
                if self._forwarded:
                    elements = forwarded_elements(values)
                    hops = [node for node, _ in elements]
                    index = self.trusted.client_index(hops)
                    scheme = elements[index][1] if index is not None else None
                else:
                    hops = x_forwarded_for(values)
                    index = self.trusted.client_index(hops)
                    protos = [v for n, v in headers if n == b"x-forwarded-proto"]
                    scheme = _proto(protos, index, len(hops))
                host = hops[index] if index is not None else None
                if scheme in ("http", "https"):
                    # The scheme the visitor used with the first proxy: cookies' Secure
                    # flag and the URLs the app builds depend on it.
                    if scope["type"] == "websocket":
                        scheme = "wss" if scheme == "https" else "ws"
                    scope = {**scope, "scheme": scheme}
        masked = self._masked(host)
        return {
            **scope,
            "client": (masked, 0) if masked is not None else None,
            "headers": [(n, v) for n, v in headers if n not in ADDRESS_HEADERS],
        }

    def _masked(self, host: str | None) -> str | None:
        if host is None:
            return None
        masked = self._cache.get(host)
        if masked is None:
            address = _strip_port(host) if host else None
            if address is None:
                # Not an address (a Unix socket, "testclient"): nothing worth keeping, and
                # nothing the app could mistake for one.
                return None
            masked = mask_ip(address, ipv4_prefix=self._v4, ipv6_prefix=self._v6)
            if len(self._cache) >= MASK_CACHE_SIZE:
                self._cache.clear()
            self._cache[host] = masked
        return masked


class TrustedProxies:
    """The networks whose forwarding headers are believed."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )
        self._known: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def contains(self, address: str) -> bool:
        """Return whether ``address`` (a textual IP) belongs to a trusted proxy."""
        known = self._known.get(address)
        if known is None:
            ip = _parse(address)
            known = ip is not None and any(ip in network for network in self.networks)
            if len(self._known) >= MASK_CACHE_SIZE:
                self._known.clear()
            self._known[address] = known
        return known

    def client_index(self, hops: Sequence[str | None]) -> int | None:
        """Return the position of ``client(hops)`` in ``hops``, or ``None`` if unknown."""
        for index in range(len(hops) - 1, -1, -1):
            hop = hops[index]
            if hop is None:
                return None
            if not self.contains(hop):
                return index
        return 0 if hops else None

    def client(self, hops: Sequence[str | None]) -> str | None:
        """Return the client at the end of a forwarding chain, walking it from the right.

        ``hops`` are the addresses the proxies appended, oldest first. The first one
        (from the right) that is not a trusted proxy is the client: everything left of
        it was written by someone we cannot believe. An unparsable or unknown hop there
        means the client is unknown (``None``); a chain of only trusted hops yields its
        leftmost address.
        """
        index = self.client_index(hops)
        return hops[index] if index is not None else None


def x_forwarded_for(values: Iterable[bytes]) -> list[str | None]:
    """Return the hops of all ``X-Forwarded-For`` lines, oldest first (``None``: unparsable)."""
    hops: list[str | None] = []
    for value in values:
        for part in value.decode("latin-1").split(","):
            part = part.strip()
            if part:
                hops.append(_strip_port(part))
    return hops


def forwarded_for(values: Iterable[bytes]) -> list[str | None]:
    """Return the ``for=`` node of each element of all RFC 7239 ``Forwarded`` lines.

    An element without ``for``, with ``for=unknown`` or an obfuscated node (``_hidden``)
    gives ``None``: the proxy did not say who the client was (RFC 7239 §6).
    """
    return [node for node, _ in forwarded_elements(values)]


def forwarded_elements(values: Iterable[bytes]) -> list[tuple[str | None, str | None]]:
    """Return ``(for node, proto)`` of each element of all ``Forwarded`` lines, in order.

    Parsed strictly (RFC 7239 §4: ``token=token`` or ``token="quoted-string"`` pairs). A
    line that does not parse counts as one element with an unknown node: a visitor could
    otherwise open a quoted string that swallows what the proxy appended to the same line.
    """
    elements: list[tuple[str | None, str | None]] = []
    for value in values:
        parsed = _parse_forwarded(value.decode("latin-1"))
        if parsed is None:
            elements.append((None, None))
            continue
        for pairs in parsed:
            node = _strip_port(pairs["for"]) if "for" in pairs else None
            proto = pairs.get("proto", "").lower() or None
            elements.append((node, proto))
    return elements


_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PAIR = re.compile(
    rf'[ \t]*({_TCHARS})=({_TCHARS}|"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t\x20-\x7e])*")[ \t]*'
)


def _parse_forwarded(line: str) -> list[dict[str, str]] | None:
    """Return the elements of one ``Forwarded`` line as name -> value maps, or ``None``."""
    elements: list[dict[str, str]] = []
    pairs: dict[str, str] = {}
    position, end = 0, len(line)
    while position < end:
        if line[position] in " \t,":  # empty list elements are allowed (RFC 7230 §7)
            if line[position] == "," and pairs:
                elements.append(pairs)
                pairs = {}
            position += 1
            continue
        match = _PAIR.match(line, position)
        if match is None:
            return None
        name, value = match[1].lower(), match[2]
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if name in pairs:
            return None  # a parameter twice in one element is malformed (§4)
        pairs[name] = value
        position = match.end()
        if position < end and line[position] == ";":
            position += 1
        elif position < end and line[position] != ",":
            return None
    if pairs:
        elements.append(pairs)
    return elements


def _proto(values: list[bytes], index: int | None, hops: int) -> str | None:
    """Return the ``X-Forwarded-Proto`` entry that belongs to the client's hop.

    Proxies that append write one entry per hop, aligned with ``X-Forwarded-For``; a
    single entry (the usual case: one proxy sets it) is the last proxy's view.
    """
    protos = [p.strip().lower() for v in values for p in v.decode("latin-1").split(",")]
    protos = [p for p in protos if p]
    if not protos or index is None:
        return None
    return protos[index] if len(protos) == hops else protos[-1]


def _strip_port(node: str) -> str | None:
    """Return the address of ``1.2.3.4``, ``1.2.3.4:80``, ``[2001:db8::1]:80`` or ``None``."""
    if node.startswith("["):
        end = node.find("]")
        node = node[1:end] if end > 0 else ""
    elif node.count(":") == 1:
        node = node.split(":", 1)[0]
    try:  # inet_pton (C) first: this runs for every hop of every forwarded request
        socket.inet_pton(socket.AF_INET6 if ":" in node else socket.AF_INET, node)
        return node
    except (OSError, ValueError):
        return node if _parse(node) is not None else None  # zone ids: fe80::1%eth0


def _parse(address: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
