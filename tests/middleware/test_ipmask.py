"""mask_ip keeps only the configured leading bits, for every address family."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.middleware import mask_ip

CASES = {
    "ipv4_default_24": ("203.0.113.77", {}, "203.0.113.0"),
    "ipv4_16": ("203.0.113.77", {"ipv4_prefix": 16}, "203.0.0.0"),
    "ipv4_odd_prefix": ("203.0.113.255", {"ipv4_prefix": 25}, "203.0.113.128"),
    "ipv4_keep_nothing": ("203.0.113.77", {"ipv4_prefix": 0}, "0.0.0.0"),
    "ipv4_keep_all": ("203.0.113.77", {"ipv4_prefix": 32}, "203.0.113.77"),
    "ipv6_default_48": ("2001:db8:1234:5678::1", {}, "2001:db8:1234::"),
    "ipv6_64": ("2001:db8:1234:5678:9abc::1", {"ipv6_prefix": 64}, "2001:db8:1234:5678::"),
    "ipv6_uppercase": ("2001:DB8:ABCD:0012::9", {}, "2001:db8:abcd::"),
    "ipv4_mapped_masked_as_ipv4": ("::ffff:203.0.113.77", {}, "::ffff:203.0.113.0"),
    "ipv6_zone_dropped": ("fe80::1234%eth0", {"ipv6_prefix": 16}, "fe80::"),
    "loopback": ("127.0.0.1", {}, "127.0.0.0"),
    "whitespace": (" 198.51.100.9 ", {}, "198.51.100.0"),
}


@pytest.mark.parametrize(("address", "options", "expected"), list(CASES.values()), ids=list(CASES))
def test_mask_ip(address: str, options: dict[str, int], expected: str) -> None:
    assert mask_ip(address, **options) == expected


@pytest.mark.parametrize(
    "bad", ["", "testclient", "203.0.113", "1.2.3.4.5", "2001:db8::g", "::1/64"]
)
def test_non_addresses_are_refused_with_the_allowed_form(bad: str) -> None:
    with pytest.raises(ValueError, match="is not an IPv4 or IPv6 address"):
        mask_ip(bad)


@pytest.mark.parametrize(
    ("options", "name"),
    [({"ipv4_prefix": 33}, "ipv4_prefix"), ({"ipv6_prefix": -1}, "ipv6_prefix")],
)
def test_prefixes_out_of_range_are_refused(options: dict[str, int], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        mask_ip("203.0.113.1", **options)


@given(st.ip_addresses(v=4), st.integers(0, 32))
def test_masked_ipv4_is_the_network_address(address: ipaddress.IPv4Address, prefix: int) -> None:
    masked = ipaddress.IPv4Address(mask_ip(str(address), ipv4_prefix=prefix))
    assert masked == ipaddress.IPv4Network(f"{address}/{prefix}", strict=False).network_address


@given(st.ip_addresses(v=6), st.integers(0, 128))
def test_masked_ipv6_never_keeps_more_than_the_prefix(
    address: ipaddress.IPv6Address, prefix: int
) -> None:
    masked = ipaddress.IPv6Address(mask_ip(str(address), ipv6_prefix=prefix))
    if address.ipv4_mapped is None:
        assert masked == ipaddress.IPv6Network(f"{address}/{prefix}", strict=False).network_address
    else:
        assert masked.ipv4_mapped is not None
        assert int(masked.ipv4_mapped) & 0xFF == 0, "IPv4 /24 applies to mapped addresses"
