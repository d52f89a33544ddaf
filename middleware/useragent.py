"""Reducing a User-Agent header to browser and OS family, the most a record or log keeps.

The parsing is ua-parser's (the engine of the ``user-agents`` package) through its 1.0
API, so the compiled ``ua-parser-rs`` resolver is used when installed: an uncached
header then costs about 15 µs instead of the ~900 µs ``user_agents.parse`` spends on
also parsing the device in pure Python. The results are the same families and versions
(``tests/middleware/test_useragent.py`` compares them).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

import ua_parser
from ua_parser import Domain, load_builtins

#: Longer headers are cut before parsing; real ones are well below.
MAX_UA_CHARS = 512
#: Distinct User-Agent headers remembered; real traffic repeats a few hundred strings.
CACHE_SIZE = 8192

_DOMAINS = Domain.USER_AGENT | Domain.OS
_LITERAL = re.compile(r"^[A-Za-z0-9 ._-]+$")


def _first_group(pattern: str) -> str | None:
    """Return the text of the first capturing group of a regular expression."""
    depth, start, index = 0, -1, 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if char == "(":
            if start < 0 and not pattern.startswith("(?", index):
                start, depth = index + 1, 1
            elif start >= 0:
                depth += 1
        elif char == ")" and start >= 0:
            depth -= 1
            if depth == 0:
                return pattern[start:index]
        index += 1
    return None


def _alternatives(group: str) -> list[str]:
    """Split a group at its top-level ``|`` and unescape ``\\-``-style punctuation."""
    parts, depth, current, index = [], 0, "", 0
    while index < len(group):
        char = group[index]
        if char == "\\" and index + 1 < len(group):
            current += char + group[index + 1]
            index += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(current)
            current = ""
            index += 1
            continue
        current += char
        index += 1
    parts.append(current)
    return [re.sub(r"\\([^A-Za-z0-9])", r"\1", part) for part in parts]


def _fixed_families(matchers: Iterable[Any]) -> frozenset[str]:
    """Return the families a list of ua-parser matchers yields without free-text captures.

    Most rules name a fixed family or capture one of a few literal words. A handful of
    crawler rules capture free text (``^(.{0,200})/1.0 CFNetwork``, ``[A-z]+[Bb]ot``),
    through which a header could put a name or an e-mail address into the log; such
    families are logged as ``Other``.
    """
    families: set[str] = set()
    for matcher in matchers:
        template: str = matcher.family
        if "$" not in template:
            families.add(template)
            continue
        group = _first_group(matcher.regex)
        for word in _alternatives(group) if group else []:
            if _LITERAL.match(word):
                families.add(template.replace("$1", word))
    return frozenset(families)


@functools.cache
def known_families() -> frozenset[str]:
    """Return the browser families that are never text copied from the header."""
    return _fixed_families(load_builtins()[0])


@functools.cache
def known_os_families() -> frozenset[str]:
    """Return the OS families that are never text copied from the header."""
    return _fixed_families(load_builtins()[1])


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
    if agent is None or agent.family not in known_families():
        family, major = "Other", ""
    else:
        family, major = agent.family, agent.major or ""
        if not major.isdigit():
            major = ""
    os_family = system.family if system is not None else "Other"
    if os_family not in known_os_families():
        os_family = "Other"
    return Browser(family, major, os_family)


def reduce_user_agent(header: str) -> tuple[str, str]:
    """Return ``(browser family, OS family)``, e.g. ``("Firefox", "Windows")``.

    What a consent record keeps: no versions, since they prove nothing about consent.
    """
    summary = browser_summary(header)
    return (summary.family, summary.os)
