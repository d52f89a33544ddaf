"""Which service a URL, an inline script or a cookie belongs to.

``ServiceIndex`` is built once from the settings. It answers for every configured service,
allowed or not; the rewriter then asks the visitor's consent state. URLs are read the way a
browser reads them: character references decoded, tabs and newlines removed, backslashes
taken as slashes, scheme and host case-insensitive, scheme-relative and relative URLs
resolved against the page's host.
"""

from __future__ import annotations

import fnmatch
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass

from consentgate.config import Settings

#: Characters a browser's URL parser strips from both ends, and removes inside.
_STRIP = "".join(chr(c) for c in range(0x21))
_REMOVE = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_AUTHORITY_END = re.compile(r"[/?#]")


@dataclass(frozen=True, slots=True)
class ParsedURL:
    """A URL reduced to what matching needs: lower-case host and the rest (``/path?query``)."""

    host: str
    rest: str
    relative: bool


def parse_url(value: str, page_host: str) -> ParsedURL | None:
    """Return host and rest of an attribute value, or ``None`` for non-network URLs.

    ``data:``, ``blob:``, ``javascript:`` and fragment-only URLs fetch nothing from the network
    and give ``None``.
    """
    if "&" in value:
        value = html.unescape(value)
    value = value.strip(_STRIP)
    if not value or value[0] == "#":
        return None
    if "\t" in value or "\n" in value or "\r" in value:
        value = _REMOVE.sub("", value)
    if "\\" in value:
        value = value.replace("\\", "/")
    scheme = _SCHEME.match(value)
    if scheme is not None:
        if scheme.group(1).lower() not in ("http", "https"):
            return None
        authority = value[scheme.end() :].lstrip("/")
    elif value.startswith("//"):
        authority = value.lstrip("/")
    else:
        rest = value if value[0] == "/" else "/" + value
        return ParsedURL(page_host, rest.lower(), True)
    end = _AUTHORITY_END.search(authority)
    if end is None:
        host, rest = authority, "/"
    else:
        host, rest = authority[: end.start()], authority[end.start() :]
        if rest[0] != "/":
            rest = "/" + rest
    if "@" in host:
        host = host.rsplit("@", 1)[1]
    if host.startswith("["):
        host = host.split("]", 1)[0] + "]"
    elif ":" in host:
        host = host.split(":", 1)[0]
    return ParsedURL(host.lower().rstrip("."), rest.lower(), False)


def _pattern_parts(pattern: str) -> tuple[str, str]:
    host, _, path = pattern.partition("/")
    return host.lower(), "/" + path.lower()


@dataclass(frozen=True, slots=True)
class _PathRule:
    prefix: str
    glob: re.Pattern[str] | None
    services: tuple[str, ...]

    def matches(self, rest: str) -> bool:
        if self.glob is not None:
            return self.glob.match(rest) is not None
        return rest.startswith(self.prefix)


class ServiceIndex:
    """Finds the services behind URLs, inline script text and cookie names."""

    def __init__(self, settings: Settings) -> None:
        exact: dict[str, set[str]] = {}
        wild: dict[str, set[str]] = {}
        paths: dict[str, list[_PathRule]] = {}
        on_host: dict[str, set[str]] = {}
        signatures: dict[bytes, set[str]] = {}
        for service in settings.services.values():
            sid = service.id
            for host in service.hosts:
                # A script that names a service's own host loads from it (or writes a tag
                # that does): it counts as that service's. "*.x" is named as ".x".
                named = host[1:] if host[0] == "*" else host
                signatures.setdefault(named.encode(), set()).add(sid)
                if host.startswith("*."):
                    wild.setdefault(host[2:], set()).add(sid)
                else:
                    exact.setdefault(host, set()).add(sid)
                    on_host.setdefault(host, set()).add(sid)
            for pattern in service.expanded_url_patterns():
                host, path = _pattern_parts(pattern)
                glob = None
                if "*" in path:
                    glob = re.compile(fnmatch.translate(path).replace(r"\Z", ""))
                paths.setdefault(host, []).append(_PathRule(path, glob, (sid,)))
                on_host.setdefault(host, set()).add(sid)
                if glob is None:
                    signatures.setdefault(pattern.encode(), set()).add(sid)
            for signature in service.signatures:
                signatures.setdefault(signature.encode(), set()).add(sid)
        self._exact = {h: tuple(sorted(s)) for h, s in exact.items()}
        self._wild = {h: tuple(sorted(s)) for h, s in wild.items()}
        # Longer prefixes first, so the most specific rule names the service.
        self._paths = {h: sorted(rules, key=lambda r: -len(r.prefix)) for h, rules in paths.items()}
        self._on_host = {h: tuple(sorted(s)) for h, s in on_host.items()}
        self.signatures: tuple[tuple[bytes, tuple[str, ...]], ...] = tuple(
            (sig, tuple(sorted(ids))) for sig, ids in signatures.items()
        )
        # Script URLs are compared lower-case: a self-hosted "/js/emos3.js" is econda's.
        self.url_signatures = tuple(
            (sig.lower(), ids) for sig, ids in self.signatures if len(sig) >= 5
        )
        self.categories = {s.id: s.category for s in settings.services.values()}
        self._hosts_with_rules = frozenset(self._exact) | frozenset(self._paths)

    def can_match_relative(self, page_host: str) -> bool:
        """Whether a relative URL on ``page_host`` can belong to any service."""
        return page_host in self._hosts_with_rules or self._wild_lookup(page_host) != ()

    def services_for_url(self, url: ParsedURL, *, origin_only: bool = False) -> tuple[str, ...]:
        """Return the services a URL belongs to (empty if none).

        With ``origin_only`` (``preconnect``, ``dns-prefetch``) the path is irrelevant: the
        connection itself reaches every service on that host.
        """
        host = url.host
        if not origin_only:
            rules = self._paths.get(host)
            if rules is not None:
                for rule in rules:
                    if rule.matches(url.rest):
                        return rule.services
        found = self._exact.get(host, ())
        if not found:
            found = self._wild_lookup(host)
        if origin_only or (not found and url.rest == "/"):
            shared = self._on_host.get(host, ())
            if shared:
                return tuple(sorted(set(found) | set(shared)))
        return found

    def _wild_lookup(self, host: str) -> tuple[str, ...]:
        dot = host.find(".")
        while dot != -1:
            found = self._wild.get(host[dot + 1 :])
            if found is not None:
                return found
            dot = host.find(".", dot + 1)
        return ()

    def services_in_script(self, text: bytes, among: Iterable[str] | None = None) -> set[str]:
        """Return the services whose signatures occur in an inline script's text."""
        wanted = None if among is None else set(among)
        found: set[str] = set()
        for signature, ids in self.signatures:
            if wanted is not None and wanted.isdisjoint(ids):
                continue
            if signature in text:
                found.update(ids if wanted is None else wanted.intersection(ids))
        return found


def site_of(host: str) -> str:
    """Return a host's site for first/third-party decisions: its last two labels.

    A heuristic without the public-suffix list: ``shop.stadtwerke.de`` and ``www.stadtwerke.de``
    are one site; under two-label public suffixes (``example.co.uk``) every site looks the same,
    so fewer hosts are reported as unknown third parties. Nothing is blocked on this basis.
    """
    parts = host.rsplit(".", 2)
    return ".".join(parts[-2:]) if len(parts) >= 2 else host
