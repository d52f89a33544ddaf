"""Reducing a User-Agent header to browser and OS family, the most a record or log keeps.

The parsing is ua-parser's (the engine of the ``user-agents`` package) through its 1.0
API, so the compiled ``ua-parser-rs`` resolver is used when installed: an uncached
header then costs about 15 µs instead of the ~900 µs ``user_agents.parse`` spends on
also parsing the device in pure Python. The results are the same families and versions
(``tests/middleware/test_useragent.py`` compares them).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import ua_parser
from ua_parser import Domain

#: Longer headers are cut before parsing; real ones are well below.
MAX_UA_CHARS = 512
#: Distinct User-Agent headers remembered; real traffic repeats a few hundred strings.
CACHE_SIZE = 8192

_DOMAINS = Domain.USER_AGENT | Domain.OS


class Browser(NamedTuple):
    """What survives of a User-Agent header: ``Browser("Firefox", "120", "Windows")``."""

    family: str
    major: str
    os: str


@functools.lru_cache(maxsize=CACHE_SIZE)
def browser_summary(header: str) -> Browser:
    """Return browser family, its major version and OS family of a User-Agent header.

    Minor versions, device and everything else are dropped: they add to a fingerprint.
    Unknown parts are ``"Other"`` (family) and ``""`` (version). Cached by header.
    """
    if not header:
        return Browser("Other", "", "Other")
    result = ua_parser.parser(header[:MAX_UA_CHARS], _DOMAINS)
    agent, system = result.user_agent, result.os
    return Browser(
        agent.family if agent is not None else "Other",
        (agent.major or "") if agent is not None else "",
        system.family if system is not None else "Other",
    )


def reduce_user_agent(header: str) -> tuple[str, str]:
    """Return ``(browser family, OS family)``, e.g. ``("Firefox", "Windows")``.

    What a consent record keeps: no versions, since they prove nothing about consent.
    """
    summary = browser_summary(header)
    return (summary.family, summary.os)
