"""User-agent reduction: the same families as ``user-agents``, at a fraction of the cost."""

from __future__ import annotations

import pytest
import user_agents

from consentgate.middleware.useragent import (
    MAX_UA_CHARS,
    Browser,
    browser_summary,
    reduce_user_agent,
)

#: Real headers of the browsers and crawlers a German utility's site sees.
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "",
]


@pytest.mark.parametrize("header", AGENTS)
def test_same_result_as_user_agents(header: str) -> None:
    reference = user_agents.parse(header)
    major = reference.browser.version[0] if reference.browser.version else ""
    expected = Browser(reference.browser.family, str(major), reference.os.family)
    if not header:
        expected = Browser("Other", "", "Other")
    assert browser_summary(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(AGENTS[2], Browser("Firefox", "133", "Windows"), id="firefox"),
        pytest.param(AGENTS[1], Browser("Edge", "131", "Windows"), id="edge"),
        pytest.param(AGENTS[4], Browser("Mobile Safari", "18", "iOS"), id="iphone"),
        pytest.param(AGENTS[11], Browser("Googlebot", "2", "Other"), id="crawler"),
        pytest.param("", Browser("Other", "", "Other"), id="missing"),
        pytest.param("\x00\xff" * 10, Browser("Other", "", "Other"), id="junk"),
    ],
)
def test_only_family_major_and_os_survive(header: str, expected: Browser) -> None:
    assert browser_summary(header) == expected


def test_consent_records_keep_no_version() -> None:
    assert reduce_user_agent(AGENTS[2]) == ("Firefox", "Windows")


def test_long_headers_are_cut_before_parsing() -> None:
    long = AGENTS[2] + " x" * 10_000
    assert browser_summary(long) == browser_summary(long[:MAX_UA_CHARS])


@pytest.mark.parametrize(
    "header",
    [
        "jane.doe_MusterStrasse12 Spider/3",
        "MaxMustermannBot/1.0",
        "Erika_Musterfrau/1.0 CFNetwork/1494.0.7 Darwin/23.4.0",
        "Mozilla/5.0 (compatible; jane@example.org crawler)",
    ],
)
def test_free_text_a_sender_chose_never_becomes_the_family(header: str) -> None:
    """Some crawler rules copy the header's text into the family; those become "Other"."""
    summary = browser_summary(header)
    assert summary.family == "Other"
    for fragment in ("jane", "Muster", "Erika", "example"):
        assert fragment not in summary.family + summary.os
