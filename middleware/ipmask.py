"""Truncating IP addresses so that no full address reaches the app, the ledger or a log."""

from __future__ import annotations

import functools
import ipaddress


@functools.lru_cache(maxsize=4096, typed=True)
def mask_ip(address: str, *, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> str:
    """Return ``address`` with only its first ``ipv4_prefix`` / ``ipv6_prefix`` bits kept.

    ``mask_ip("203.0.113.77") == "203.0.113.0"``; ``mask_ip("2001:db8:1:2::5") ==
    "2001:db8:1::"``. An IPv4-mapped IPv6 address (``::ffff:203.0.113.77``) is masked as
    the IPv4 address it carries, and so is the IPv4 part of a 6to4 address
    (``2002:cb00:714d::1`` becomes ``2002:cb00:7100::``). A zone id (``fe80::1%eth0``) is
    dropped. Raises ``ValueError`` for anything that is not an IP address or for a prefix
    out of range.
    """
    if isinstance(ipv4_prefix, bool) or not 0 <= ipv4_prefix <= 32:
        raise ValueError(f"ipv4_prefix {ipv4_prefix!r} must be between 0 and 32")
    if isinstance(ipv6_prefix, bool) or not 0 <= ipv6_prefix <= 128:
        raise ValueError(f"ipv6_prefix {ipv6_prefix!r} must be between 0 and 128")
    text = address.strip().split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(
            f"address {address!r} is not an IPv4 or IPv6 address, e.g. '203.0.113.7' or "
            "'2001:db8::1'"
        ) from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # Masking the mapped form with the IPv6 prefix would keep the whole IPv4 address.
        kept = _keep(int(ip.ipv4_mapped), 32, ipv4_prefix)
        return f"::ffff:{ipaddress.IPv4Address(kept)}"
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Address(_keep(int(ip), 32, ipv4_prefix)))
    if ip.sixtofour is not None:
        # 6to4 (RFC 3056) carries the whole IPv4 address in bits 16-47, which a /48 keeps:
        # mask that embedded address like any other IPv4 address.
        ipv6_prefix = min(ipv6_prefix, 16 + ipv4_prefix)
    return str(ipaddress.IPv6Address(_keep(int(ip), 128, ipv6_prefix)))


def _keep(value: int, width: int, prefix: int) -> int:
    """Zero all but the first ``prefix`` of ``width`` bits."""
    return value & (((1 << prefix) - 1) << (width - prefix))
