"""Applies the visitor's consent to one response: headers, cookies and the HTML body.

``Gate`` is built once per middleware and holds everything compiled from the settings;
``ResponseFilter`` wraps the ASGI ``send`` of one request.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from collections import OrderedDict
from typing import Any

from starlette.types import Message, Send

from consentgate.config import Language, Settings
from consentgate.consent import ConsentState
from consentgate.middleware.audit import AUDIT_ERROR_PATH, TrackerAudit
from consentgate.middleware.endpoints import accept_language
from consentgate.middleware.policy import CookiePolicy, CSPBuilder, Signals
from consentgate.middleware.rewriter import Blocker, HtmlRewriter, RewriteReport

logger = logging.getLogger("consentgate.blocking")

#: Bodies up to this size, sent in one message, are eligible for the rewrite cache.
CACHE_ENTRY_MAX = 1024 * 1024
_NONCE = re.compile(rb"'nonce-([A-Za-z0-9+/=_\-]+)'")
_HTML_TYPES = (b"text/html", b"application/xhtml+xml")
_DECODERS: dict[bytes, int] = {b"gzip": 31, b"x-gzip": 31, b"deflate": 15}

# Filter modes.
_PASS, _HOLD, _STREAM = range(3)


class RewriteCache:
    """Remembers the rewrite of identical bodies for identical consent (LRU, byte-bounded)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[Any, ...], tuple[bytes, RewriteReport]] = OrderedDict()
        # Hashes of bodies seen once: a body is only kept when it comes again, so pages that
        # differ on every request (a CSRF token, a timestamp) do not churn the cache.
        self._seen: set[int] = set()

    def get(self, key: tuple[Any, ...]) -> tuple[bytes, RewriteReport] | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[Any, ...], body: bytes, out: bytes, report: RewriteReport) -> None:
        cost = len(body) + len(out) + 200
        if cost > self.max_bytes:
            return
        digest = hash(key)
        if digest not in self._seen:
            if len(self._seen) >= 65536:
                self._seen.clear()
            self._seen.add(digest)
            return
        self._entries[key] = (out, report)
        self.size += cost
        while self.size > self.max_bytes:
            old_key, (old_out, _) = self._entries.popitem(last=False)
            self.size -= len(old_key[0]) + len(old_out) + 200


class Gate:
    """Everything the response filter needs, compiled once from the settings."""

    def __init__(
        self, settings: Settings, *, assets_html: bytes, asset_version: str, audit: TrackerAudit
    ) -> None:
        self.settings = settings
        self.blocker = Blocker(settings, assets_html=assets_html)
        self.cookies = CookiePolicy(settings)
        self.csp = CSPBuilder(settings)
        self.signals = Signals(settings)
        self.audit = audit
        self.cache = RewriteCache(settings.blocking.cache_bytes)
        self.asset_version = asset_version
        self.optional = settings.optional_service_ids
        vary = [b"Cookie", *self.signals.vary]
        self.vary = vary
        self._tokens: dict[tuple[frozenset[str], str], bytes] = {}
        self._warned: set[bytes] = set()

    def variant(self, allowed: frozenset[str], language: str) -> bytes:
        """Return a short token naming one rewritten variant of a page (for the ETag)."""
        key = (allowed, language)
        token = self._tokens.get(key)
        if token is None:
            seed = f"{sorted(allowed)}|{self.settings.revision}|{self.asset_version}|{language}"
            token = hashlib.blake2b(seed.encode(), digest_size=5).hexdigest().encode()
            if len(self._tokens) < 4096:
                self._tokens[key] = token
        return token

    def language(self, header: bytes | None) -> Language:
        """Return the page language the ``Accept-Language`` header asks for."""
        if header is not None:
            for tag in accept_language(header.decode("latin-1")):
                if tag in self.settings.languages:
                    return tag
        return self.settings.default_language

    def warn_once(self, key: bytes, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)


class ResponseFilter:
    """Wraps ``send`` for one HTTP request; cheap until a response turns out to matter."""

    __slots__ = (
        "_decoder",
        "_encoder",
        "_encoding",
        "_languages",
        "_nonce",
        "_raw_host",
        "_rewriter",
        "_send",
        "_start",
        "allowed",
        "cookie_names",
        "gate",
        "host",
        "language",
        "mode",
        "path",
        "state",
    )

    allowed: frozenset[str]
    host: str
    language: Language
    _start: Message | None
    _rewriter: HtmlRewriter | None
    _decoder: Any
    _encoder: Any
    _encoding: bytes
    _nonce: str | None

    def __init__(
        self,
        gate: Gate,
        send: Send,
        state: ConsentState,
        raw_host: bytes,
        path: str,
        languages: bytes | None,
        cookie_names: tuple[str, ...],
    ) -> None:
        self.gate = gate
        self._send = send
        self.state = state
        self._raw_host = raw_host
        self.path = path
        self._languages = languages
        self.cookie_names = cookie_names
        self.mode = _PASS

    def _prepare(self) -> None:
        """Work out what only a page (or a Set-Cookie) needs: allowed set, host, language."""
        gate = self.gate
        self.allowed = self.state.allowed & gate.optional
        raw = self._raw_host.decode("latin-1")
        self.host = raw.rsplit(":", 1)[0] if not raw.endswith("]") else raw
        self.language = gate.language(self._languages)
        self._start = None
        self._rewriter = None
        self._decoder = None
        self._encoder = None
        self._encoding = b""
        self._nonce = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            await self._on_start(message)
        elif kind == "http.response.body" and self.mode != _PASS:
            await self._on_body(message)
        else:
            await self._send(message)

    # -- headers ---------------------------------------------------------------------------

    async def _on_start(self, message: Message) -> None:
        gate = self.gate
        headers: list[tuple[bytes, bytes]] = message.get("headers", [])
        # The common case first: not a page and no cookies, nothing to do.
        relevant = False
        for name, value in headers:
            lname = name.lower()
            if lname == b"set-cookie" or (
                lname == b"content-type" and value[:21].lower().startswith(_HTML_TYPES)
            ):
                relevant = True
                break
        if not relevant:
            await self._send(message)
            return
        self._prepare()
        html = False
        changed = False
        kept: list[tuple[bytes, bytes]] = []
        unknown_cookies: list[str] = []
        encoding = b""
        status = message["status"]
        if not 200 <= status < 300:
            # Error pages answer any path: counting them per path would let anyone fill the
            # audit with made-up URLs. Their findings count once, under "*".
            self.path = AUDIT_ERROR_PATH
        for name, value in headers:
            lname = name.lower()
            if lname == b"set-cookie":
                owner = gate.cookies.keep_set_cookie(value, self.allowed)
                if owner is not None:
                    changed = True
                    logger.debug("dropped a Set-Cookie of %s (no consent)", owner)
                    continue
                cookie = value.split(b"=", 1)[0].strip().decode("latin-1")
                if not gate.cookies.known(cookie):
                    unknown_cookies.append(cookie)
            elif lname == b"content-type":
                html = value[:21].lower().startswith(_HTML_TYPES)
                if html and b"utf-16" in value.lower():
                    gate.warn_once(b"utf-16", "UTF-16 HTML is passed through unrewritten")
                    html = False
            elif lname == b"content-encoding":
                encoding = value.strip().lower()
            kept.append((name, value))
        if unknown_cookies:
            gate.audit.record(self.path, cookies=unknown_cookies)
        if html and (status < 200 or status in (204, 304)):
            html = False
        if html and encoding and encoding != b"identity":
            if encoding not in _DECODERS:
                gate.warn_once(
                    encoding,
                    "HTML with Content-Encoding %r cannot be rewritten and passes unchanged; "
                    "compress after consentgate (put GZipMiddleware outside it)",
                    encoding.decode("latin-1"),
                )
                html = False
            else:
                self._encoding = encoding
        if not html:
            if changed:
                message = {**message, "headers": kept}
            await self._send(message)
            return
        self._start = {**message, "headers": self._page_headers(kept)}
        self.mode = _HOLD

    def _page_headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        gate = self.gate
        out: list[tuple[bytes, bytes]] = []
        vary: list[bytes] = []
        token = gate.variant(self.allowed, self.language)
        for name, value in headers:
            lname = name.lower()
            if lname in (b"content-length", b"last-modified"):
                continue  # the length changes; the date cannot tell consent variants apart
            if lname == b"etag":
                value = _variant_etag(value, token)
            elif lname == b"vary":
                vary.extend(v.strip() for v in value.split(b","))
                continue
            elif lname in (b"content-security-policy", b"content-security-policy-report-only"):
                nonce = _NONCE.search(value)
                if nonce is not None and self._nonce is None:
                    self._nonce = nonce.group(1).decode("ascii")
            out.append((name, value))
        present = {v.lower() for v in vary}
        if b"*" not in present:
            vary.extend(v for v in gate.vary if v.lower() not in present)
        out.append((b"vary", b", ".join(v for v in vary if v)))
        if gate.csp.enabled:
            out.append((gate.csp.header, gate.csp.policy(self.allowed)))
        out.extend(
            (b"set-cookie", v.encode("latin-1"))
            for v in gate.cookies.expiring(self.cookie_names, self.allowed, self.host)
        )
        return out

    # -- body ------------------------------------------------------------------------------

    async def _on_body(self, message: Message) -> None:
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if self.mode == _HOLD:
            assert self._start is not None
            start, self._start = self._start, None
            if not more:
                out = self._whole(body)
                if out is None:  # undecodable: the original goes out unchanged
                    start["headers"] = [
                        (n, v) for n, v in start["headers"] if n.lower() != b"etag"
                    ] + [(b"content-length", str(len(body)).encode())]
                    self.mode = _PASS
                    await self._send(start)
                    await self._send(message)
                    return
                start["headers"].append((b"content-length", str(len(out)).encode()))
                await self._send(start)
                await self._send({"type": "http.response.body", "body": out})
                self.mode = _PASS
                return
            self.mode = _STREAM
            self._rewriter = self._new_rewriter()
            if self._encoding:
                self._decoder = zlib.decompressobj(_DECODERS[self._encoding])
                self._encoder = _encoder(self._encoding)
            await self._send(start)
        out = self._stream(body, final=not more)
        if out or not more:
            await self._send({"type": "http.response.body", "body": out, "more_body": more})
        if not more:
            self.mode = _PASS
            assert self._rewriter is not None
            self._done(self._rewriter.report)

    def _new_rewriter(self) -> HtmlRewriter:
        return self.gate.blocker.rewriter(
            self.state, host=self.host, language=self.language, nonce=self._nonce
        )

    def _whole(self, body: bytes) -> bytes | None:
        """Rewrite a complete body: decode, rewrite (or take from the cache), encode."""
        gate = self.gate
        if self._encoding:
            try:
                body = zlib.decompress(body, _DECODERS[self._encoding])
            except zlib.error:
                gate.warn_once(b"bad-" + self._encoding, "undecodable compressed HTML passed")
                return None
        cacheable = self._nonce is None and len(body) <= CACHE_ENTRY_MAX and gate.cache.max_bytes
        key = (body, self.allowed, self.host, self.language)
        cached = gate.cache.get(key) if cacheable else None
        if cached is not None:
            out, report = cached
        else:
            rewriter = self._new_rewriter()
            out = rewriter.feed(body) + rewriter.finish()
            report = rewriter.report
            if cacheable:
                gate.cache.put(key, body, out, report)
        self._done(report)
        if self._encoding:
            encoder = _encoder(self._encoding)
            out = encoder.compress(out) + encoder.flush()
        return out

    def _stream(self, body: bytes, *, final: bool) -> bytes:
        rewriter = self._rewriter
        assert rewriter is not None
        if self._decoder is not None:
            body = self._decoder.decompress(body)
            if final:
                body += self._decoder.flush()
        out = rewriter.feed(body)
        if final:
            out += rewriter.finish()
        if self._encoder is not None:
            out = self._encoder.compress(out) + self._encoder.flush(
                zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH
            )
        return out

    def _done(self, report: RewriteReport) -> None:
        if report.blocked or report.unknown_hosts or report.oversize:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s: blocked %s; unknown third-party hosts %s; too long to inspect %d",
                    self.path,
                    dict(sorted(report.blocked.items())),
                    sorted(report.unknown_hosts),
                    report.oversize,
                )
            self.gate.audit.record(self.path, blocked=report.blocked, hosts=report.unknown_hosts)


def _encoder(encoding: bytes) -> Any:
    return zlib.compressobj(6, zlib.DEFLATED, _DECODERS[encoding])


def _variant_etag(value: bytes, token: bytes) -> bytes:
    inner = value.strip()
    if inner.startswith(b"W/"):
        inner = inner[2:]
    inner = inner.strip(b'"')
    return b'W/"' + inner + b"-cg" + token + b'"'


def strip_variant(if_none_match: bytes, token: bytes) -> bytes:
    """Turn the ETags this filter made for variant ``token`` back into the app's own."""
    suffix = b"-cg" + token + b'"'
    parts: list[bytes] = []
    for tag in if_none_match.split(b","):
        tag = tag.strip()
        if tag.endswith(suffix):
            inner = tag[: -len(suffix)].removeprefix(b"W/").lstrip(b'"')
            parts.extend((b'"' + inner + b'"', b'W/"' + inner + b'"'))
        elif b"-cg" not in tag:
            parts.append(tag)
    return b", ".join(parts)
