"""mask_ip keeps only the configured leading bits, for every address family.

Where the vendor vectors come from:

* Matomo, "Anonymize Visitors' IP addresses" (Administration > Privacy > Anonymize data). The
  setting is a number of *bytes* to mask: 1, 2 (recommended) or 3, plus "mask fully"; the admin
  UI illustrates them as 192.168.100.xxx / 192.168.xxx.xxx / 192.xxx.xxx.xxx
  (matomo-org/matomo, plugins/PrivacyManager/Controller.php, ``maskLengthOptions``). The masking
  is ``Matomo\\Network\\IPv4::anonymize`` / ``IPv6::anonymize`` (matomo-org/component-network,
  src/IPv4.php and src/IPv6.php; read as vendored in matomo-org/matomo-for-wordpress,
  app/vendor/matomo/network/src/IPv6.php):
  - IPv4 zeroes the last N bytes: 1/2/3/4 bytes keep /24, /16, /8, /0.
  - An IPv4-mapped IPv6 address gets the same N bytes of its IPv4 part zeroed.
  - Any other IPv6 address is ANDed with ``ffff:ffff:ffff:ffff::``, ``ffff:ffff:ffff:0000::``,
    ``ffff:ff00:0000:0000::`` or ``0000::``: 1/2/3/4 "bytes" mask 64/80/104/128 bits, i.e.
    keep /64, /48, /24, /0. (Not 80/96/104: 1 byte keeps a /64, 2 bytes a /48.)
  The addresses and expected results are the ones in component-network tests/IPv6Test.php and
  matomo-org/matomo plugins/PrivacyManager/tests/Unit/AnonymizeIPTest.php, turned from binary
  strings into text.
* Google Analytics, "[UA] IP masking in Universal Analytics"
  (https://support.google.com/analytics/answer/2763052, also answer/2905384): with
  ``anonymize_ip`` (``gtag('config', '<GA_MEASUREMENT_ID>', {'anonymize_ip': true})``, sent as
  ``&aip=1``) Analytics "sets the last octet of IPv4 user IP addresses and the last 80 bits of
  IPv6 addresses to zeros", i.e. keeps /24 and /48 -- mask_ip's defaults. The same article says
  that "in Google Analytics 4, IP masking is not necessary since IP addresses are not logged or
  stored", and Google's GA4 migration guide (analytics/devguides/migration/measurement/
  ip-anonymization) says IP anonymization is always on for GA4 and cannot be disabled; neither
  gives GA4 bit widths, so the GA vectors below are the documented Universal Analytics ones.
"""

from __future__ import annotations

import ipaddress
import re
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.middleware import mask_ip

Options = dict[str, int]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# ---------------------------------------------------------------------------------------------
# Matomo: bytes masked -> prefix kept (src/IPv4.php zeroes trailing bytes; src/IPv6.php $masks).
MATOMO_IPV4_PREFIX = {0: 32, 1: 24, 2: 16, 3: 8, 4: 0}
MATOMO_IPV6_PREFIX = {0: 128, 1: 64, 2: 48, 3: 24, 4: 0}

# AnonymizeIPTest.php::getipv4Addresses / IPv6Test.php::getIPv4AddressesToAnonymize:
# address -> result with 0, 1, 2, 3 and 4 bytes masked.
MATOMO_IPV4_VECTORS: dict[str, tuple[str, str, str, str, str]] = {
    "0.0.0.0": ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0"),
    "0.0.0.1": ("0.0.0.1", "0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0"),
    "0.0.0.255": ("0.0.0.255", "0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0"),
    "0.0.1.0": ("0.0.1.0", "0.0.1.0", "0.0.0.0", "0.0.0.0", "0.0.0.0"),
    "0.0.1.1": ("0.0.1.1", "0.0.1.0", "0.0.0.0", "0.0.0.0", "0.0.0.0"),
    "0.0.255.255": ("0.0.255.255", "0.0.255.0", "0.0.0.0", "0.0.0.0", "0.0.0.0"),
    "0.1.0.0": ("0.1.0.0", "0.1.0.0", "0.1.0.0", "0.0.0.0", "0.0.0.0"),
    "0.1.1.1": ("0.1.1.1", "0.1.1.0", "0.1.0.0", "0.0.0.0", "0.0.0.0"),
    "0.255.255.255": ("0.255.255.255", "0.255.255.0", "0.255.0.0", "0.0.0.0", "0.0.0.0"),
    "1.0.0.0": ("1.0.0.0", "1.0.0.0", "1.0.0.0", "1.0.0.0", "0.0.0.0"),
    "127.255.255.255": (
        "127.255.255.255",
        "127.255.255.0",
        "127.255.0.0",
        "127.0.0.0",
        "0.0.0.0",
    ),
    "128.0.0.0": ("128.0.0.0", "128.0.0.0", "128.0.0.0", "128.0.0.0", "0.0.0.0"),
    "255.255.255.255": (
        "255.255.255.255",
        "255.255.255.0",
        "255.255.0.0",
        "255.0.0.0",
        "0.0.0.0",
    ),
}

# IPv6Test.php::getAddressesToAnonymize (0-3 bytes); 4 bytes is the '0000::' mask.
MATOMO_IPV6_VECTORS: dict[str, tuple[str, str, str, str, str]] = {
    "2001:db8:0:8d3:0:8a2e:70:7344": (
        "2001:db8:0:8d3:0:8a2e:70:7344",
        "2001:db8:0:8d3::",
        "2001:db8::",
        "2001:d00::",
        "::",
    ),
    "2001:6f8:900:724::2": (
        "2001:6f8:900:724::2",
        "2001:6f8:900:724::",
        "2001:6f8:900::",
        "2001:600::",
        "::",
    ),
}

MATOMO_CASES = [
    *(
        pytest.param(
            address,
            {"ipv4_prefix": MATOMO_IPV4_PREFIX[masked]},
            expected[masked],
            id=f"matomo-{masked}-bytes-ipv4-{address}",
        )
        for address, expected in MATOMO_IPV4_VECTORS.items()
        for masked in MATOMO_IPV4_PREFIX
    ),
    *(
        pytest.param(
            f"::ffff:{address}",
            {"ipv4_prefix": MATOMO_IPV4_PREFIX[masked]},
            f"::ffff:{expected[masked]}",
            id=f"matomo-{masked}-bytes-ipv4-mapped-{address}",
        )
        for address, expected in MATOMO_IPV4_VECTORS.items()
        for masked in MATOMO_IPV4_PREFIX
    ),
    *(
        pytest.param(
            address,
            {"ipv6_prefix": MATOMO_IPV6_PREFIX[masked]},
            expected[masked],
            id=f"matomo-{masked}-bytes-ipv6-{address}",
        )
        for address, expected in MATOMO_IPV6_VECTORS.items()
        for masked in MATOMO_IPV6_PREFIX
    ),
]

# Google Analytics anonymize_ip / aip=1: last octet of IPv4, last 80 bits of IPv6 set to zero.
GOOGLE_ANALYTICS_CASES = [
    pytest.param("203.0.113.77", {}, "203.0.113.0", id="ga-aip-ipv4-last-octet-by-default"),
    pytest.param(
        "203.0.113.77", {"ipv4_prefix": 24}, "203.0.113.0", id="ga-aip-ipv4-last-octet-explicit"
    ),
    pytest.param("255.255.255.255", {}, "255.255.255.0", id="ga-aip-ipv4-all-ones"),
    pytest.param(
        "2001:db8:85a3:8d3:1319:8a2e:370:7348",
        {},
        "2001:db8:85a3::",
        id="ga-aip-ipv6-last-80-bits-by-default",
    ),
    pytest.param(
        "2001:db8:85a3:8d3:1319:8a2e:370:7348",
        {"ipv6_prefix": 48},
        "2001:db8:85a3::",
        id="ga-aip-ipv6-last-80-bits-explicit",
    ),
    pytest.param(
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        {},
        "ffff:ffff:ffff::",
        id="ga-aip-ipv6-all-ones",
    ),
]

# ---------------------------------------------------------------------------------------------
# Input forms, boundaries and the other rules of mask_ip's docstring.
FORM_AND_BOUNDARY_CASES = [
    # Defaults and plain prefixes.
    pytest.param("203.0.113.77", {}, "203.0.113.0", id="ipv4-default-24"),
    pytest.param("203.0.113.77", {"ipv4_prefix": 16}, "203.0.0.0", id="ipv4-16"),
    pytest.param("127.0.0.1", {}, "127.0.0.0", id="ipv4-loopback"),
    pytest.param("2001:db8:1234:5678::1", {}, "2001:db8:1234::", id="ipv6-default-48"),
    pytest.param(
        "2001:db8:1234:5678:9abc::1",
        {"ipv6_prefix": 64},
        "2001:db8:1234:5678::",
        id="ipv6-64",
    ),
    pytest.param("::1", {}, "::", id="ipv6-loopback"),
    pytest.param("::", {}, "::", id="ipv6-unspecified"),
    # IPv6 text forms: compressed, expanded, upper case; output is RFC 5952 lower-case compressed.
    pytest.param("2001:db8:abcd:12::9", {}, "2001:db8:abcd::", id="ipv6-compressed"),
    pytest.param(
        "2001:0db8:abcd:0012:0000:0000:0000:0009",
        {},
        "2001:db8:abcd::",
        id="ipv6-expanded",
    ),
    pytest.param("2001:DB8:ABCD:0012::9", {}, "2001:db8:abcd::", id="ipv6-upper-case"),
    pytest.param(
        "2001:0DB8:ABCD:0012:0000:0000:0000:0009",
        {},
        "2001:db8:abcd::",
        id="ipv6-expanded-upper-case",
    ),
    pytest.param(
        "2001:db8:0:8d3:0:8a2e:70:7344",
        {"ipv6_prefix": 128},
        "2001:db8:0:8d3:0:8a2e:70:7344",
        id="ipv6-single-zero-groups-stay-uncompressed",
    ),
    pytest.param(
        "64:ff9b::203.0.113.77", {}, "64:ff9b::", id="ipv6-nat64-dotted-tail-is-plain-ipv6"
    ),
    # IPv4-mapped IPv6: masked with ipv4_prefix, returned as ::ffff:a.b.c.d.
    pytest.param("::ffff:203.0.113.77", {}, "::ffff:203.0.113.0", id="mapped-default-24"),
    pytest.param("::FFFF:203.0.113.77", {}, "::ffff:203.0.113.0", id="mapped-upper-case"),
    pytest.param("::ffff:cb00:714d", {}, "::ffff:203.0.113.0", id="mapped-hex-tail"),
    pytest.param("0:0:0:0:0:ffff:203.0.113.77", {}, "::ffff:203.0.113.0", id="mapped-expanded"),
    pytest.param(
        "0000:0000:0000:0000:0000:FFFF:CB00:714D",
        {},
        "::ffff:203.0.113.0",
        id="mapped-expanded-upper-hex",
    ),
    pytest.param(
        "::ffff:203.0.113.77", {"ipv4_prefix": 16}, "::ffff:203.0.0.0", id="mapped-ipv4-16"
    ),
    pytest.param(
        "::ffff:203.0.113.77",
        {"ipv6_prefix": 128},
        "::ffff:203.0.113.0",
        id="mapped-ignores-ipv6-prefix-128",
    ),
    pytest.param(
        "::ffff:203.0.113.77",
        {"ipv6_prefix": 0},
        "::ffff:203.0.113.0",
        id="mapped-ignores-ipv6-prefix-0",
    ),
    # Zone ids are dropped.
    pytest.param("fe80::1234%eth0", {"ipv6_prefix": 16}, "fe80::", id="zone-name-dropped"),
    pytest.param("fe80::1234%3", {"ipv6_prefix": 16}, "fe80::", id="zone-number-dropped"),
    pytest.param("FE80::1:2:3:4%ETH0", {"ipv6_prefix": 64}, "fe80::", id="zone-upper-case"),
    pytest.param(
        "fe80::1:2:3:4%eth0", {"ipv6_prefix": 128}, "fe80::1:2:3:4", id="zone-dropped-at-128"
    ),
    pytest.param(
        "::ffff:203.0.113.77%eth0", {}, "::ffff:203.0.113.0", id="zone-dropped-from-mapped"
    ),
    # Surrounding whitespace is ignored.
    pytest.param(" 198.51.100.9 ", {}, "198.51.100.0", id="whitespace-spaces"),
    pytest.param("\t198.51.100.9\r\n", {}, "198.51.100.0", id="whitespace-tab-crlf"),
    pytest.param("\n2001:db8:1:2::3\t", {}, "2001:db8:1::", id="whitespace-ipv6"),
    pytest.param(" fe80::1%eth0 ", {"ipv6_prefix": 10}, "fe80::", id="whitespace-and-zone"),
    # Boundaries: keep nothing, keep everything, one bit either side.
    pytest.param("203.0.113.77", {"ipv4_prefix": 0}, "0.0.0.0", id="ipv4-prefix-0"),
    pytest.param("255.255.255.255", {"ipv4_prefix": 1}, "128.0.0.0", id="ipv4-prefix-1"),
    pytest.param("255.255.255.255", {"ipv4_prefix": 31}, "255.255.255.254", id="ipv4-prefix-31"),
    pytest.param("203.0.113.77", {"ipv4_prefix": 32}, "203.0.113.77", id="ipv4-prefix-32"),
    pytest.param("2001:db8::1", {"ipv6_prefix": 0}, "::", id="ipv6-prefix-0"),
    pytest.param(
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", {"ipv6_prefix": 1}, "8000::", id="ipv6-prefix-1"
    ),
    pytest.param(
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        {"ipv6_prefix": 127},
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
        id="ipv6-prefix-127",
    ),
    pytest.param(
        "2001:db8:1234:5678::1",
        {"ipv6_prefix": 128},
        "2001:db8:1234:5678::1",
        id="ipv6-prefix-128",
    ),
    pytest.param("::ffff:203.0.113.77", {"ipv4_prefix": 0}, "::ffff:0.0.0.0", id="mapped-0"),
    pytest.param("::ffff:203.0.113.77", {"ipv4_prefix": 32}, "::ffff:203.0.113.77", id="mapped-32"),
    # Prefixes that are not byte aligned.
    pytest.param("203.0.113.255", {"ipv4_prefix": 25}, "203.0.113.128", id="ipv4-prefix-25"),
    pytest.param("203.0.113.77", {"ipv4_prefix": 20}, "203.0.112.0", id="ipv4-prefix-20"),
    pytest.param("255.255.255.255", {"ipv4_prefix": 20}, "255.255.240.0", id="ipv4-ones-20"),
    pytest.param(
        "::ffff:203.0.113.77", {"ipv4_prefix": 20}, "::ffff:203.0.112.0", id="mapped-prefix-20"
    ),
    pytest.param(
        "2001:db8:abcd:ef12::1", {"ipv6_prefix": 44}, "2001:db8:abc0::", id="ipv6-prefix-44"
    ),
    pytest.param(
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        {"ipv6_prefix": 44},
        "ffff:ffff:fff0::",
        id="ipv6-ones-44",
    ),
    # Each family only looks at its own prefix.
    pytest.param("203.0.113.77", {"ipv6_prefix": 0}, "203.0.113.0", id="ipv4-ignores-ipv6-prefix"),
    pytest.param(
        "2001:db8:1:2::5", {"ipv4_prefix": 0}, "2001:db8:1::", id="ipv6-ignores-ipv4-prefix"
    ),
]


@pytest.mark.parametrize(
    ("address", "options", "expected"),
    [*MATOMO_CASES, *GOOGLE_ANALYTICS_CASES, *FORM_AND_BOUNDARY_CASES],
)
def test_keeps_only_the_leading_prefix_bits(address: str, options: Options, expected: str) -> None:
    assert mask_ip(address, **options) == expected


@pytest.mark.parametrize(
    ("address", "options", "expected"),
    [*MATOMO_CASES, *GOOGLE_ANALYTICS_CASES, *FORM_AND_BOUNDARY_CASES],
)
def test_masking_a_masked_address_changes_nothing(
    address: str, options: Options, expected: str
) -> None:
    assert mask_ip(expected, **options) == expected


# ---------------------------------------------------------------------------------------------
# Refusals: a ValueError whose message names the offending value.
BAD_ADDRESSES = [
    pytest.param("", id="empty"),
    pytest.param("   ", id="only-whitespace"),
    pytest.param("%eth0", id="only-a-zone"),
    pytest.param("256.1.1.1", id="ipv4-octet-over-255"),
    pytest.param("1.2.3", id="ipv4-three-octets"),
    pytest.param("203.0.113", id="ipv4-three-octets-documentation-net"),
    pytest.param("1.2.3.4.5", id="ipv4-five-octets"),
    pytest.param("203.0.113.", id="ipv4-trailing-dot"),
    pytest.param("203.0.113. 7", id="ipv4-inner-space"),
    pytest.param("-1.2.3.4", id="ipv4-negative-octet"),
    pytest.param("010.1.1.1", id="ipv4-leading-zero-octal-ambiguity"),
    pytest.param("0x7f.0.0.1", id="ipv4-hex-octet"),
    pytest.param("2130706433", id="ipv4-as-integer"),
    pytest.param("١.٢.٣.٤", id="ipv4-non-ascii-digits"),
    pytest.param("1.2.3.4\x00", id="ipv4-trailing-nul"),
    pytest.param("203.0.113.7:8080", id="ipv4-with-port"),
    pytest.param("203.0.113.0/24", id="ipv4-cidr"),
    pytest.param("[2001:db8::1]", id="ipv6-in-brackets"),
    pytest.param("[2001:db8::1]:443", id="ipv6-in-brackets-with-port"),
    pytest.param("::1/64", id="ipv6-cidr"),
    pytest.param("2001:db8::g", id="ipv6-non-hex"),
    pytest.param("2001:db8:::1", id="ipv6-triple-colon"),
    pytest.param("2001:db8::1::2", id="ipv6-two-double-colons"),
    pytest.param("1:2:3:4:5:6:7:8:9", id="ipv6-nine-groups"),
    pytest.param("2001:db8::12345", id="ipv6-five-digit-group"),
    pytest.param("::ffff:256.0.113.77", id="mapped-octet-over-255"),
    pytest.param("testclient", id="hostname-starlette-testclient"),
    pytest.param("localhost", id="hostname-localhost"),
    pytest.param("example.com", id="hostname-dotted"),
    pytest.param("None", id="none-like-None"),
    pytest.param("none", id="none-like-none"),
    pytest.param("null", id="none-like-null"),
    pytest.param("undefined", id="none-like-undefined"),
    pytest.param("nan", id="none-like-nan"),
    pytest.param("unknown", id="none-like-unknown"),
    pytest.param("-", id="none-like-dash"),
]


@pytest.mark.parametrize("bad", BAD_ADDRESSES)
def test_non_addresses_are_refused_naming_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match="is not an IPv4 or IPv6 address") as refused:
        mask_ip(bad)
    assert repr(bad) in str(refused.value)


def _mentions(message: str, value: int) -> bool:
    """Whether ``message`` contains ``value`` as a whole number (33 is not in 332 or -33)."""
    return re.search(rf"(?<![\d-]){value}(?!\d)", message) is not None


BAD_PREFIXES = [
    pytest.param("ipv4_prefix", -1, id="ipv4-minus-1"),
    pytest.param("ipv4_prefix", -24, id="ipv4-minus-24"),
    pytest.param("ipv4_prefix", 33, id="ipv4-33"),
    pytest.param("ipv4_prefix", 48, id="ipv4-48"),
    pytest.param("ipv4_prefix", 128, id="ipv4-128"),
    pytest.param("ipv6_prefix", -1, id="ipv6-minus-1"),
    pytest.param("ipv6_prefix", -48, id="ipv6-minus-48"),
    pytest.param("ipv6_prefix", 129, id="ipv6-129"),
    pytest.param("ipv6_prefix", 256, id="ipv6-256"),
]


@pytest.mark.parametrize("address", ["203.0.113.1", "2001:db8::1", "::ffff:203.0.113.1"])
@pytest.mark.parametrize(("name", "value"), BAD_PREFIXES)
def test_prefixes_out_of_range_are_refused_naming_the_value(
    address: str, name: str, value: int
) -> None:
    with pytest.raises(ValueError, match=name) as refused:
        mask_ip(address, **{name: value})
    assert _mentions(str(refused.value), value)


def test_results_are_cached_per_address_and_prefixes() -> None:
    before = mask_ip.cache_info()
    first = mask_ip("192.0.2.201", ipv4_prefix=20)
    again = mask_ip("192.0.2.201", ipv4_prefix=20)
    assert first == again == "192.0.0.0"
    assert mask_ip.cache_info().hits >= before.hits + 1
    assert mask_ip("192.0.2.201", ipv4_prefix=28) == "192.0.2.192"


# ---------------------------------------------------------------------------------------------
# Properties over random addresses and prefixes.
mapped_addresses = st.ip_addresses(v=4).map(lambda ip: ipaddress.IPv6Address(f"::ffff:{ip}"))
ipv6_addresses = st.ip_addresses(v=6) | mapped_addresses
any_addresses: st.SearchStrategy[IPAddress] = st.ip_addresses(v=4) | ipv6_addresses
ipv4_prefixes = st.integers(0, 32)
ipv6_prefixes = st.integers(0, 128)


def _network_address(address: IPAddress, prefix: int) -> IPAddress:
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address


@given(st.ip_addresses(v=4), ipv4_prefixes)
def test_masked_ipv4_is_the_network_address(address: ipaddress.IPv4Address, prefix: int) -> None:
    masked = mask_ip(str(address), ipv4_prefix=prefix)
    assert masked == str(_network_address(address, prefix))


@given(ipv6_addresses, ipv4_prefixes, ipv6_prefixes)
def test_masked_ipv6_is_the_network_address_and_mapped_ipv4_uses_the_ipv4_prefix(
    address: ipaddress.IPv6Address, ipv4_prefix: int, ipv6_prefix: int
) -> None:
    masked = mask_ip(str(address), ipv4_prefix=ipv4_prefix, ipv6_prefix=ipv6_prefix)
    if address.ipv4_mapped is not None:
        assert masked == f"::ffff:{_network_address(address.ipv4_mapped, ipv4_prefix)}"
    elif address.sixtofour is not None:
        # 6to4 carries an IPv4 address in bits 16-47: it gets the IPv4 prefix too.
        assert masked == str(_network_address(address, min(ipv6_prefix, 16 + ipv4_prefix)))
    else:
        assert masked == str(_network_address(address, ipv6_prefix))


@pytest.mark.parametrize(
    ("address", "options", "expected"),
    [
        pytest.param("2002:cb00:714d::1", {}, "2002:cb00:7100::", id="6to4-default"),
        pytest.param("2002:cb00:714d:1::1", {"ipv4_prefix": 16}, "2002:cb00::", id="6to4-v4-16"),
        pytest.param(
            "2002:cb00:714d:1::1", {"ipv6_prefix": 32}, "2002:cb00::", id="6to4-shorter-v6"
        ),
        pytest.param("2001:db8:714d::1", {}, "2001:db8:714d::", id="not-6to4-unchanged-rule"),
    ],
)
def test_6to4_addresses_mask_their_embedded_ipv4(
    address: str, options: Options, expected: str
) -> None:
    """A /48 alone would keep the whole IPv4 address a 6to4 address carries (RFC 3056)."""
    assert mask_ip(address, **options) == expected


@pytest.mark.parametrize("flag", [True, False])
def test_boolean_prefixes_are_refused(flag: bool) -> None:
    with pytest.raises(ValueError, match="prefix"):
        mask_ip("203.0.113.7", ipv4_prefix=flag)
    with pytest.raises(ValueError, match="prefix"):
        mask_ip("2001:db8::1", ipv6_prefix=flag)


@given(any_addresses, ipv4_prefixes, ipv6_prefixes)
def test_masking_is_idempotent(address: IPAddress, ipv4_prefix: int, ipv6_prefix: int) -> None:
    once = mask_ip(str(address), ipv4_prefix=ipv4_prefix, ipv6_prefix=ipv6_prefix)
    assert mask_ip(once, ipv4_prefix=ipv4_prefix, ipv6_prefix=ipv6_prefix) == once


@given(any_addresses, ipv4_prefixes, ipv4_prefixes, ipv6_prefixes, ipv6_prefixes)
def test_masking_twice_keeps_the_shorter_prefix(
    address: IPAddress, ipv4_a: int, ipv4_b: int, ipv6_a: int, ipv6_b: int
) -> None:
    first = mask_ip(str(address), ipv4_prefix=ipv4_a, ipv6_prefix=ipv6_a)
    second = mask_ip(first, ipv4_prefix=ipv4_b, ipv6_prefix=ipv6_b)
    shortest = mask_ip(
        str(address), ipv4_prefix=min(ipv4_a, ipv4_b), ipv6_prefix=min(ipv6_a, ipv6_b)
    )
    assert second == shortest


@given(any_addresses)
def test_defaults_are_google_analytics_anonymize_ip(address: IPAddress) -> None:
    assert mask_ip(str(address)) == mask_ip(str(address), ipv4_prefix=24, ipv6_prefix=48)


@given(ipv6_addresses, ipv4_prefixes, ipv6_prefixes)
def test_ipv6_text_form_does_not_change_the_result(
    address: ipaddress.IPv6Address, ipv4_prefix: int, ipv6_prefix: int
) -> None:
    forms = {address.compressed, address.exploded, address.compressed.upper()}
    forms.add(address.exploded.upper())
    results = {mask_ip(form, ipv4_prefix=ipv4_prefix, ipv6_prefix=ipv6_prefix) for form in forms}
    assert len(results) == 1


@given(
    ipv6_addresses,
    st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12),
    st.sampled_from(["", " ", "\t", "\n", " \r\n"]),
)
def test_zone_ids_and_surrounding_whitespace_are_ignored(
    address: ipaddress.IPv6Address, zone: str, padding: str
) -> None:
    assert mask_ip(f"{padding}{address}%{zone}{padding}") == mask_ip(str(address))


@given(any_addresses, ipv4_prefixes, ipv6_prefixes)
def test_result_is_a_canonical_address_of_the_same_family(
    address: IPAddress, ipv4_prefix: int, ipv6_prefix: int
) -> None:
    masked = mask_ip(str(address), ipv4_prefix=ipv4_prefix, ipv6_prefix=ipv6_prefix)
    parsed = ipaddress.ip_address(masked)
    assert parsed.version == address.version
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        assert masked == f"::ffff:{parsed.ipv4_mapped}"
    else:
        assert masked == str(parsed)


@given(st.from_regex(r"[a-z][a-z-]{0,14}(\.[a-z]{2,6}){0,2}", fullmatch=True))
def test_hostnames_are_refused(hostname: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(hostname))):
        mask_ip(hostname)


@given(st.integers(max_value=-1) | st.integers(min_value=33))
def test_any_ipv4_prefix_out_of_range_is_refused(prefix: int) -> None:
    with pytest.raises(ValueError, match="ipv4_prefix") as refused:
        mask_ip("203.0.113.1", ipv4_prefix=prefix)
    assert _mentions(str(refused.value), prefix)


@given(st.integers(max_value=-1) | st.integers(min_value=129))
def test_any_ipv6_prefix_out_of_range_is_refused(prefix: int) -> None:
    with pytest.raises(ValueError, match="ipv6_prefix") as refused:
        mask_ip("2001:db8::1", ipv6_prefix=prefix)
    assert _mentions(str(refused.value), prefix)


@pytest.mark.parametrize(
    ("address", "options"),
    [
        pytest.param(b"203.0.113.7", {}, id="bytes"),
        pytest.param(None, {}, id="none"),
        pytest.param(3405803783, {}, id="int"),
        pytest.param("203.0.113.7", {"ipv4_prefix": 24.0}, id="float-prefix"),
        pytest.param("2001:db8::1", {"ipv6_prefix": "48"}, id="str-prefix"),
    ],
)
def test_wrong_types_are_value_errors_naming_the_value(address: Any, options: Any) -> None:
    with pytest.raises(ValueError, match="must be"):
        mask_ip(address, **options)
