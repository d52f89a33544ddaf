"""Speed and memory of the HTML rewrite engine against python-lolhtml doing the same job.

Baselines run in the same process and run: two floors (counting ``<`` and a compiled regex
over the interesting tag starts) and python-lolhtml 0.1.0 (the Rust lol-html streaming
rewriter) with handlers that block the same services the same way: ``src``/``href`` of
``script``, ``iframe``, ``img`` and ``link`` moved to ``data-consentgate-*`` when the URL
belongs to a service without consent, inline scripts buffered and checked for the services'
signatures, ``<noscript>`` fallbacks dropped when they name such a service. Every run rewrites
distinct bodies (a unique CSRF token each), so no cache of identical pages can help.
"""

from __future__ import annotations

import fnmatch
import re
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Sequence
from html import escape

import lolhtml

from bench.page import SITE_HOST, bench_settings, realistic_page
from consentgate.config import Settings
from consentgate.consent import ConsentState
from consentgate.middleware.rewriter import Blocker, RewriteReport

PAGES = 300
REPEATS = 5
SMALL_CHUNK = 4 * 1024
STREAM_BYTES = 50 * 1024 * 1024
STREAM_CHUNK = 64 * 1024

_URL = re.compile(r"^[\x00-\x20]*(?:https?:)?//([^/?#\\\s]+)(\S*)", re.IGNORECASE)
_TAG_STARTS = re.compile(rb"<(?:script|iframe|img|link|noscript)[\s>/]", re.IGNORECASE)


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern).replace(r"\Z", ""))


class LolRules:
    """What python-lolhtml's handlers need to know, compiled once per set of blocked services."""

    def __init__(self, settings: Settings, blocked: frozenset[str]) -> None:
        self.exact: dict[str, str] = {}
        self.wild: dict[str, str] = {}
        self.paths: dict[str, list[tuple[str, re.Pattern[str] | None, str]]] = {}
        self.origins: dict[str, str] = {}
        signatures: dict[str, str] = {}
        mentions: list[str] = []
        for service in settings.services.values():
            if service.id not in blocked:
                continue
            for host in service.hosts:
                if host.startswith("*."):
                    self.wild[host[2:]] = service.id
                    mentions.append(r"[a-z0-9.-]*\." + re.escape(host[2:]))
                else:
                    self.exact[host] = service.id
                    self.origins[host] = service.id
                    mentions.append(re.escape(host))
            for pattern in service.expanded_url_patterns():
                host, _, path = pattern.partition("/")
                path = "/" + path
                glob = _glob(path) if "*" in path else None
                self.paths.setdefault(host.lower(), []).append((path, glob, service.id))
                self.origins.setdefault(host.lower(), service.id)
                mentions.append(r"[^\s\"'<>]*".join(re.escape(p) for p in pattern.split("*")))
            for signature in service.signatures:
                signatures[signature] = service.id
        self.signature_ids = signatures
        self.signatures = (
            re.compile("|".join(re.escape(s) for s in sorted(signatures, key=len, reverse=True)))
            if signatures
            else None
        )
        self.mentions = re.compile("|".join(mentions), re.IGNORECASE) if mentions else None

    def service_for_url(self, url: str, *, origin_only: bool = False) -> str | None:
        """Return the blocked service an absolute URL loads from (relative URLs: none)."""
        match = _URL.match(url)
        if match is None:
            return None
        host = match.group(1).lower()
        if "@" in host:
            host = host.rsplit("@", 1)[1]
        if ":" in host:
            host = host.split(":", 1)[0]
        host = host.rstrip(".")
        if origin_only:
            found = self.origins.get(host)
            return found if found is not None else self._wild(host)
        rest = match.group(2) or "/"
        for prefix, glob, service_id in self.paths.get(host, ()):
            if glob.match(rest) if glob is not None else rest.startswith(prefix):
                return service_id
        found = self.exact.get(host)
        return found if found is not None else self._wild(host)

    def _wild(self, host: str) -> str | None:
        dot = host.find(".")
        while dot != -1:
            found = self.wild.get(host[dot + 1 :])
            if found is not None:
                return found
            dot = host.find(".", dot + 1)
        return None


class _LolPage:
    __slots__ = ("blocked", "rules")

    def __init__(self, rules: LolRules) -> None:
        self.rules = rules
        self.blocked: dict[str, int] = {}

    def count(self, service_ids: Iterable[str]) -> None:
        for service_id in service_ids:
            self.blocked[service_id] = self.blocked.get(service_id, 0) + 1


class _UrlHandler:
    """``script[src]``, ``iframe[src]``, ``img[src]``: park the URL, mark the service."""

    __slots__ = ("page",)

    def __init__(self, page: _LolPage) -> None:
        self.page = page

    def element(self, element: lolhtml.Element) -> None:
        url = element.get_attribute("src")
        if url is None:
            return
        service_id = self.page.rules.service_for_url(url)
        if service_id is None:
            return
        element.remove_attribute("src")
        element.set_attribute("data-consentgate-src", url)
        element.set_attribute("data-consentgate-service", service_id)
        if element.tag_name == "script":
            kind = element.get_attribute("type")
            if kind is not None:
                element.set_attribute("data-consentgate-type", kind)
            element.set_attribute("type", "text/plain")
        self.page.count((service_id,))


class _LinkHandler:
    """``link[href]``: resource hints reach the whole origin, anything else the URL."""

    __slots__ = ("page",)

    def __init__(self, page: _LolPage) -> None:
        self.page = page

    def element(self, element: lolhtml.Element) -> None:
        url = element.get_attribute("href")
        if url is None:
            return
        rel = (element.get_attribute("rel") or "").lower()
        origin_only = "preconnect" in rel or "dns-prefetch" in rel
        service_id = self.page.rules.service_for_url(url, origin_only=origin_only)
        if service_id is None:
            return
        element.remove_attribute("href")
        element.set_attribute("data-consentgate-href", url)
        element.set_attribute("data-consentgate-service", service_id)
        self.page.count((service_id,))


class _TextHandler:
    """Collects a text node lol-html streams in chunks, then hands it to ``whole``."""

    __slots__ = ("buffer", "page")

    def __init__(self, page: _LolPage) -> None:
        self.page = page
        self.buffer: list[str] = []

    def text(self, chunk: lolhtml.TextChunk) -> None:
        self.buffer.append(chunk.text)
        chunk.remove()
        if chunk.last_in_text_node:
            text = "".join(self.buffer)
            self.buffer.clear()
            self.whole(chunk, text)

    def whole(self, chunk: lolhtml.TextChunk, text: str) -> None:
        raise NotImplementedError


class _InlineScriptHandler(_TextHandler):
    """Inline ``<script>``: lol-html streams the text in chunks, so buffer it to the end.

    The start tag is already out when the text arrives, so a matching script is ended empty
    and its text re-emitted inside a new ``<script type="text/plain">``.
    """

    __slots__ = ()

    def whole(self, chunk: lolhtml.TextChunk, text: str) -> None:
        rules = self.page.rules
        found = (
            {rules.signature_ids[s] for s in rules.signatures.findall(text)}
            if rules.signatures is not None
            else set()
        )
        if not found:
            chunk.replace(text, lolhtml.ContentType.HTML)
            return
        self.page.count(found)
        services = escape(" ".join(sorted(found)))
        chunk.replace(
            f'</script><script type="text/plain" data-consentgate-service="{services}">{text}',
            lolhtml.ContentType.HTML,
        )


class _NoscriptHandler(_TextHandler):
    """``<noscript>`` is raw text to lol-html (scripting on): drop it if it names a service."""

    __slots__ = ()

    def whole(self, chunk: lolhtml.TextChunk, text: str) -> None:
        mentions = self.page.rules.mentions
        match = mentions.search(text) if mentions is not None else None
        if match is None:
            chunk.replace(text, lolhtml.ContentType.HTML)
            return
        url = match.group()
        service_id = self.page.rules.service_for_url("//" + url) or "noscript"
        self.page.count((service_id,))


def lolhtml_rewrite(rules: LolRules, chunks: Sequence[bytes]) -> tuple[bytes, dict[str, int]]:
    """Rewrite a body with python-lolhtml; return the output and the blocked services."""
    out = bytearray()
    page = _LolPage(rules)
    rewriter = lolhtml.HTMLRewriter(out.extend)
    rewriter.on("script[src], iframe[src], img[src]", _UrlHandler(page))
    rewriter.on("link[href]", _LinkHandler(page))
    rewriter.on("script:not([src])", _InlineScriptHandler(page))
    rewriter.on("noscript", _NoscriptHandler(page))
    for chunk in chunks:
        rewriter.write(chunk)
    rewriter.end()
    return bytes(out), page.blocked


def ours_rewrite(
    blocker: Blocker, state: ConsentState, chunks: Sequence[bytes]
) -> tuple[bytes, RewriteReport]:
    """Rewrite a body with consentgate's engine; return the output and its report."""
    rewriter = blocker.rewriter(state, host=SITE_HOST, language="de")
    parts = [rewriter.feed(chunk) for chunk in chunks]
    parts.append(rewriter.finish())
    return b"".join(parts), rewriter.report


def per_page(run: Callable[[int], object], pages: int) -> float:
    """Return the median over ``REPEATS`` of the mean seconds of ``run(i)`` for each page."""
    run(0)
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for index in range(pages):
            run(index)
        timings.append((time.perf_counter() - start) / pages)
    return statistics.median(timings)


def split(body: bytes, size: int) -> list[bytes]:
    """Return ``body`` in chunks of ``size`` bytes (which may split a UTF-8 character)."""
    return [body[i : i + size] for i in range(0, len(body), size)]


def stream(total: int, chunk: int) -> Iterator[bytes]:
    """Yield an HTML document of ``total`` bytes in ``chunk``-sized pieces, made on the fly."""
    page = realistic_page(7)
    start = page.index(b"<body")
    end = page.index(b"</body>")
    head, middle, tail = page[:start], page[start:end] * 2, page[end:]
    yield head
    sent = len(head)
    offset = 0
    period = len(middle) // 2
    while sent < total - len(tail):
        piece = middle[offset : offset + min(chunk, total - len(tail) - sent)]
        yield piece
        sent += len(piece)
        offset = (offset + len(piece)) % period
    yield tail


def stream_peak(blocker: Blocker, state: ConsentState) -> tuple[int, int, float]:
    """Return (peak traced bytes, bytes out, seconds) of streaming ``STREAM_BYTES``."""
    tracemalloc.start()
    start = time.perf_counter()
    rewriter = blocker.rewriter(state, host=SITE_HOST, language="de")
    written = 0
    for piece in stream(STREAM_BYTES, STREAM_CHUNK):
        written += len(rewriter.feed(piece))
    written += len(rewriter.finish())
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, written, seconds


def _blocked_set(settings: Settings, state: ConsentState) -> frozenset[str]:
    return frozenset(sid for sid in settings.services if not state.allows(sid))


def _counts(blocked: dict[str, int]) -> str:
    return " ".join(f"{sid}:{n}" for sid, n in sorted(blocked.items()))


def main() -> None:
    """Run the engine benchmark and print its table."""
    settings = bench_settings()
    undecided = ConsentState.undecided(settings.necessary_service_ids)
    granted = ConsentState(
        decided=True,
        consent_id="x" * 22,
        granted=settings.optional_service_ids,
        revision=settings.revision,
        necessary=settings.necessary_service_ids,
    )
    bodies = [realistic_page(i % 8, unique=f"bench-{i:06d}") for i in range(PAGES)]
    small = [split(body, SMALL_CHUNK) for body in bodies]
    whole = [(body,) for body in bodies]
    size = statistics.mean(len(b) for b in bodies)

    lol_undecided = LolRules(settings, _blocked_set(settings, undecided))
    lol_granted = LolRules(settings, _blocked_set(settings, granted))
    blocker = Blocker(settings)

    def ours(state: ConsentState, chunked: Sequence[Sequence[bytes]]) -> Callable[[int], object]:
        return lambda i: ours_rewrite(blocker, state, chunked[i])

    def lol(rules: LolRules, chunked: Sequence[Sequence[bytes]]) -> Callable[[int], object]:
        return lambda i: lolhtml_rewrite(rules, chunked[i])

    rows: list[tuple[str, float, float | None]] = []
    floor_count = per_page(lambda i: bodies[i].count(b"<"), PAGES)
    floor_regex = per_page(lambda i: sum(1 for _ in _TAG_STARTS.finditer(bodies[i])), PAGES)
    lol_u = per_page(lol(lol_undecided, whole), PAGES)
    lol_g = per_page(lol(lol_granted, whole), PAGES)
    lol_c = per_page(lol(lol_undecided, small), PAGES)
    ours_u = per_page(ours(undecided, whole), PAGES)
    ours_g = per_page(ours(granted, whole), PAGES)
    ours_c = per_page(ours(undecided, small), PAGES)
    rows = [
        ("floor: bytes.count(b'<')", floor_count, None),
        ("floor: regex over tag starts", floor_regex, None),
        ("python-lolhtml 0.1.0, undecided", lol_u, None),
        ("python-lolhtml 0.1.0, all granted", lol_g, None),
        ("python-lolhtml 0.1.0, undecided, 4 KB", lol_c, None),
        ("consentgate, undecided", ours_u, lol_u / ours_u),
        ("consentgate, all granted", ours_g, lol_g / ours_g),
        ("consentgate, undecided, 4 KB chunks", ours_c, lol_c / ours_c),
    ]
    print(f"rewrite of a {size / 1000:.0f} KB page ({PAGES} distinct bodies x {REPEATS}, median)")
    print(f"  {'':<40}{'ms/page':>9}{'MB/s':>8}  lolhtml/ours (goal >= 2x)")
    for label, seconds, ratio in rows:
        shown = f"  {ratio:.2f}x" if ratio is not None else ""
        print(f"  {label:<40}{seconds * 1e3:9.3f}{size / seconds / 1e6:8.1f}{shown}")

    _, lol_blocked = lolhtml_rewrite(lol_undecided, whole[0])
    _, report = ours_rewrite(blocker, undecided, whole[0])
    print("  services blocked on the page, undecided (elements per service):")
    print(f"    python-lolhtml  {_counts(lol_blocked)}")
    print(f"    consentgate     {_counts(report.blocked)}")
    _, granted_report = ours_rewrite(blocker, granted, whole[0])
    print(f"    consentgate, all granted: {_counts(granted_report.blocked) or 'none'}")

    peak, written, seconds = stream_peak(blocker, undecided)
    print(f"streaming {STREAM_BYTES >> 20} MB in {STREAM_CHUNK >> 10} KB chunks (undecided)")
    print(
        f"  tracemalloc peak {peak / 1e6:.2f} MB (goal < 2 MB); {written / 1e6:.1f} MB out "
        f"in {seconds:.1f} s under tracemalloc"
    )


if __name__ == "__main__":
    main()
